"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK (two fake nodes whose pods go Running/Ready without a kubelet).

`start_control_plane()` generates a CA, serving and client certificates and the
service-account signing key, starts every server on free ports, waits for each to be ready and
returns a `ControlPlane`; `ControlPlane.stop()` kills every process group and removes the
temp dir. See `tests/cluster/conftest.py` for the pytest fixtures built on it.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import pki
from .procs import HERE, Server, ServerError, ensure_binaries, free_port, http_ok, remove_tree

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")
SERVICE_CIDR = "10.0.0.0/24"
NODE_NAMES = ("kwok-node-0", "kwok-node-1")
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
READY_JSONPATH = "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}"


class Kubectl:
    """`kubectl` (the pinned build, same release as the API server) bound to one kubeconfig."""

    def __init__(self, binary: Path, kubeconfig: Path):
        self.binary, self.kubeconfig = binary, kubeconfig

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """Run `kubectl ARGS`; with `check`, a non-zero exit raises AssertionError showing stderr."""
        argv = [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc

    def json(self, *args: str) -> dict:
        """`kubectl ARGS -o json`, parsed."""
        return json.loads(self(*args, "-o", "json").stdout)

    def as_kubeconfig(self, kubeconfig: Path) -> Kubectl:
        """The same kubectl acting with another kubeconfig (e.g. a ServiceAccount's)."""
        return Kubectl(self.binary, kubeconfig)


@dataclass
class ControlPlane:
    """A running control plane. `server` is https://127.0.0.1:PORT; the admin is in system:masters."""

    root: Path
    bin_dir: Path
    server: str
    ca_pem: bytes
    admin_kubeconfig: Path
    processes: list[Server] = field(default_factory=list, repr=False)
    stopped: bool = False

    @property
    def kubectl(self) -> Kubectl:
        """kubectl as the cluster admin (for setup only; tests act as ServiceAccounts)."""
        return Kubectl(self.bin_dir / "kubectl", self.admin_kubeconfig)

    @property
    def ca_file(self) -> Path:
        return self.root / "pki" / "ca.crt"

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> str:
        """Create namespace `name` with `labels` (e.g. pod-security.kubernetes.io/enforce=restricted)."""
        doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        self.kubectl("create", "-f", "-", input=json.dumps(doc))
        # The ServiceAccount controller creates "default" asynchronously; pods need it to exist.
        self.wait_for(lambda: self.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
                      f"ServiceAccount {name}/default", timeout=30)  # fmt: skip
        return name

    def service_account_kubeconfig(self, namespace: str, name: str, duration: str = "2h") -> Path:
        """A kubeconfig carrying a token for ServiceAccount `namespace/name` (TokenRequest API),
        i.e. the identity a pod running as that account has; the account must exist."""
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}").stdout.strip()
        path = self.root / "kubeconfigs" / f"sa-{namespace}-{name}.kubeconfig"
        path.parent.mkdir(exist_ok=True)
        return pki.write_kubeconfig(
            path, self.server, self.ca_pem, f"system:serviceaccount:{namespace}:{name}", token=token,
            namespace=namespace,
        )  # fmt: skip

    def wait_for(self, condition, what: str, timeout: float = 60.0, interval: float = 0.5) -> None:
        """Poll `condition()` until true; AssertionError naming `what` on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The end of one server's log (etcd, kube-apiserver, ..., kwok)."""
        for proc in self.processes:
            if proc.name == name:
                return proc.log_tail(lines)
        return f"(no server named {name})"

    def stop(self) -> None:
        """Stop every server (reverse start order) and remove the temp dir (idempotent)."""
        if self.stopped:
            return
        for proc in reversed(self.processes):
            proc.stop()
        self.stopped = True
        remove_tree(self.root)


def _tls_context(ca: Path | None, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    if ca is None:  # controller-manager/scheduler serve a self-signed cert of their own
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cafile=str(ca))
    if client:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx


def _start_etcd(cp: ControlPlane) -> str:
    client, peer = free_port(), free_port()
    url = f"http://127.0.0.1:{client}"
    argv = [
        str(cp.bin_dir / "etcd"), "--name=default", f"--data-dir={cp.root / 'etcd'}",
        f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=default=http://127.0.0.1:{peer}",
        "--unsafe-no-fsync=true", "--log-level=warn", "--quota-backend-bytes=1073741824",
    ]  # fmt: skip
    proc = Server("etcd", argv, cp.root / "logs" / "etcd.log").start()
    cp.processes.append(proc)
    proc.wait_ready(lambda: http_ok(f"{url}/readyz"), 30, "ready (/readyz)")
    return url


def _start_apiserver(cp: ControlPlane, etcd: str, port: int, tls: Path) -> None:
    argv = [
        str(cp.bin_dir / "kube-apiserver"),
        f"--etcd-servers={etcd}",
        "--bind-address=127.0.0.1", f"--secure-port={port}", "--advertise-address=127.0.0.1",
        # The `kubernetes` Service endpoints would have to be a loopback address, which the API refuses.
        "--endpoint-reconciler-type=none",
        f"--cert-dir={tls}", f"--tls-cert-file={tls / 'apiserver.crt'}",
        f"--tls-private-key-file={tls / 'apiserver.key'}", f"--client-ca-file={tls / 'ca.crt'}",
        "--authorization-mode=Node,RBAC",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--service-account-issuer={SA_ISSUER}",
        f"--service-account-key-file={tls / 'sa.pub'}",
        f"--service-account-signing-key-file={tls / 'sa.key'}",
        "--profiling=false", "--v=1",
    ]  # fmt: skip
    proc = Server("kube-apiserver", argv, cp.root / "logs" / "kube-apiserver.log").start()
    cp.processes.append(proc)
    ctx = _tls_context(tls / "ca.crt", (tls / "admin.crt", tls / "admin.key"))
    proc.wait_ready(lambda: http_ok(f"{cp.server}/readyz", ctx), 120, "ready (/readyz)")


def _start_component(cp: ControlPlane, name: str, kubeconfig: Path, extra: list[str]) -> None:
    port = free_port()
    certs = cp.root / name
    certs.mkdir()
    argv = [
        str(cp.bin_dir / name), f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={port}", f"--cert-dir={certs}",
        "--v=1", *extra,
    ]  # fmt: skip
    proc = Server(name, argv, cp.root / "logs" / f"{name}.log").start()
    cp.processes.append(proc)
    proc.wait_ready(lambda: http_ok(f"https://127.0.0.1:{port}/healthz", _tls_context(None)), 60, "healthy")


def _kwok_config(cp: ControlPlane) -> Path:
    stages = sorted((cp.bin_dir / "kwok-stages").glob("*.yaml")) + [HERE / "stage-never-ready.yaml"]
    if len(stages) < 6:
        raise ServerError(f"KWOK stages missing from {cp.bin_dir / 'kwok-stages'} (re-run tools/testcluster/build.sh)")
    path = cp.root / "kwok.yaml"
    path.write_text("\n---\n".join(p.read_text() for p in stages))
    return path


def _node(name: str) -> dict:
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            # upstream: kubernetes-sigs/kwok test/kwok/fake-node.yaml @ v0.8.0 (minus the taint: every node is fake)
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },  # fmt: skip
        },
        "status": {"allocatable": resources, "capacity": resources, "phase": "Running"},
    }


def _start_kwok(cp: ControlPlane) -> None:
    home = cp.root / "kwok-home"
    home.mkdir()
    argv = [
        str(cp.bin_dir / "kwok"), f"--kubeconfig={cp.admin_kubeconfig}", f"--config={_kwok_config(cp)}",
        "--manage-all-nodes=true", "--node-lease-duration-seconds=40", "--cidr=10.244.0.0/16",
        f"--server-address=127.0.0.1:{free_port()}",
    ]  # fmt: skip
    env = {**os.environ, "HOME": str(home)}  # never read a developer's ~/.kwok/kwok.yaml
    proc = Server("kwok", argv, cp.root / "logs" / "kwok.log", env=env).start()
    cp.processes.append(proc)
    cp.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(_node(n)) for n in NODE_NAMES))

    def nodes_ready() -> bool:
        out = cp.kubectl(
            "get", "nodes", "-o", READY_JSONPATH,
            check=False,
        )  # fmt: skip
        return out.returncode == 0 and out.stdout.split() == ["True"] * len(NODE_NAMES)

    proc.wait_ready(nodes_ready, 60, f"managing Ready nodes {', '.join(NODE_NAMES)}")


def start_control_plane() -> ControlPlane:
    """Start etcd, kube-apiserver, controller-manager, scheduler and KWOK; wait until all are ready.

    Raises:
        ServerError: a binary is missing and cannot be built, or a server did not come up (the
            message names it and shows the end of its log). Everything started is stopped first.
    """
    bin_dir = ensure_binaries(*BINARIES)
    root = Path(tempfile.mkdtemp(prefix="civicml-cluster-"))
    tls = root / "pki"
    tls.mkdir()
    ca = pki.CertificateAuthority()
    (tls / "ca.crt").write_bytes(ca.cert_pem)
    ca.issue(
        "kube-apiserver", dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                               "kubernetes.default.svc.cluster.local"), ips=("127.0.0.1", "10.0.0.1"),
    ).write(tls, "apiserver")  # fmt: skip
    sa = pki.service_account_key()
    (tls / "sa.pub").write_bytes(sa.cert_pem)
    (tls / "sa.key").write_bytes(sa.key_pem)
    admin = ca.issue("civicml-admin", orgs=("system:masters",))
    admin.write(tls, "admin")
    port = free_port()
    server = f"https://127.0.0.1:{port}"
    kubeconfigs = root / "kubeconfigs"
    kubeconfigs.mkdir()
    admin_kc = pki.write_kubeconfig(
        kubeconfigs / "admin.kubeconfig", server, ca.cert_pem, "civicml-admin", client=admin
    )
    cp = ControlPlane(root, bin_dir, server, ca.cert_pem, admin_kc)
    try:
        etcd = _start_etcd(cp)
        _start_apiserver(cp, etcd, port, tls)
        # Each component authenticates as the user its bootstrap ClusterRole is bound to.
        cm_kc = pki.write_kubeconfig(
            kubeconfigs / "controller-manager.kubeconfig", server, ca.cert_pem, "system:kube-controller-manager",
            client=ca.issue("system:kube-controller-manager"),
        )  # fmt: skip
        _start_component(cp, "kube-controller-manager", cm_kc, [
            f"--service-account-private-key-file={tls / 'sa.key'}", f"--root-ca-file={tls / 'ca.crt'}",
            "--use-service-account-credentials=true", f"--service-cluster-ip-range={SERVICE_CIDR}",
        ])  # fmt: skip
        sched_kc = pki.write_kubeconfig(
            kubeconfigs / "scheduler.kubeconfig", server, ca.cert_pem, "system:kube-scheduler",
            client=ca.issue("system:kube-scheduler"),
        )  # fmt: skip
        _start_component(cp, "kube-scheduler", sched_kc, [])
        _start_kwok(cp)
    except BaseException:
        cp.stop()
        raise
    return cp
