"""Fixtures for tests on a real Kubernetes control plane (every test here is marked `cluster`).

One control plane per session, started by `testcluster.cluster.start_control_plane()`: etcd,
kube-apiserver (--authorization-mode=Node,RBAC, default admission plugins incl. PodSecurity),
kube-controller-manager (SA token controller, --use-service-account-credentials),
kube-scheduler and KWOK with two fake nodes (kwok-node-0, kwok-node-1) whose pods go
Running/Ready; a pod whose image tag is ":never-ready" runs but never becomes Ready. All on
127.0.0.1, certificates generated per run, everything stopped and removed at session end.
The binaries are built on first use (tools/testcluster/build.sh; cached per machine).

Fixtures (session scoped unless noted):

- `control_plane` -> `testcluster.cluster.ControlPlane`: `.server` (https URL), `.ca_pem`,
  `.ca_file`, `.admin_kubeconfig`, `.kubectl` (admin), `.create_namespace(name, labels)`,
  `.service_account_kubeconfig(namespace, sa)`, `.wait_for(cond, what, timeout)`,
  `.log_tail("kube-apiserver")`.
- `admin_kubeconfig` -> Path of the system:masters kubeconfig. Use it to SET UP only.
- `kubectl` -> `Kubectl` runner bound to the admin kubeconfig: `kubectl("get", "pods", "-n", ns)`
  returns a CompletedProcess (raises AssertionError with stderr on failure unless
  `check=False`), `kubectl.json(...)` parses `-o json`, `kubectl.as_kubeconfig(path)` is the same
  runner acting as someone else.
- `restricted_namespace` (function scoped) -> name of a fresh namespace labelled
  pod-security.kubernetes.io/enforce=restricted (enforce-version latest), warn/audit too.
- `make_namespace(labels=None, prefix="t")` (function-scoped factory) -> a fresh namespace name.
- `sa_kubeconfig(namespace, name)` (factory) -> Path of a kubeconfig holding a TokenRequest
  token for that ServiceAccount: act as the identity a user's pod would have, not as admin.
- `sa_kubectl(namespace, name)` (factory) -> `Kubectl` acting as that ServiceAccount.

Example::

    def test_x(control_plane, restricted_namespace, kubectl, sa_kubectl):
        kubectl("create", "serviceaccount", "runner", "-n", restricted_namespace)
        as_runner = sa_kubectl(restricted_namespace, "runner")
        res = as_runner("auth", "can-i", "create", "pods", check=False)
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml
from support import start_real_server
from testcluster.cluster import ControlPlane, Kubectl, start_control_plane

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/audit": "restricted",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/cluster/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def control_plane() -> ControlPlane:
    cp = start_real_server(start_control_plane)
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def admin_kubeconfig(control_plane):
    return control_plane.admin_kubeconfig


@pytest.fixture(scope="session")
def kubectl(control_plane) -> Kubectl:
    return control_plane.kubectl


@pytest.fixture
def make_namespace(control_plane):
    created: list[str] = []

    def make(labels: dict[str, str] | None = None, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        created.append(control_plane.create_namespace(name, labels))
        return name

    yield make
    for name in created:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def restricted_namespace(make_namespace) -> str:
    return make_namespace(RESTRICTED, prefix="restricted")


@pytest.fixture(scope="session")
def sa_kubeconfig(control_plane):
    def make(namespace: str, name: str):
        return control_plane.service_account_kubeconfig(namespace, name)

    return make


@pytest.fixture(scope="session")
def sa_kubectl(control_plane, sa_kubeconfig):
    def make(namespace: str, name: str) -> Kubectl:
        return control_plane.kubectl.as_kubeconfig(sa_kubeconfig(namespace, name))

    return make


# --- installing the kustomize overlays as a non-admin identity --------------------------------------

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
PLATFORM_NS = "civicml-platform"
INSTALLER = "civicml-installer"
FIELD_MANAGER = "civicml-install"


def render_overlay(kubectl: Kubectl, target: str, namespace: str) -> list[dict]:
    """`kubectl kustomize manifests/TARGET` (the pinned kubectl's kustomize), moved into `namespace`."""
    out = kubectl("kustomize", str(MANIFESTS / target)).stdout
    objects = [d for d in yaml.safe_load_all(out) if d]
    for obj in objects:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            meta["name"] = namespace
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = namespace
        elif "namespace" in meta:
            meta["namespace"] = namespace
        for subject in obj.get("subjects", []):
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace
    return objects


@pytest.fixture(scope="session")
def installer(control_plane, sa_kubectl) -> Kubectl:
    """kubectl as system:serviceaccount:civicml-platform:civicml-installer, a deploy pipeline's identity
    (think Argo CD): no cluster-wide rights until `install_overlay` grants them for one namespace."""
    control_plane.create_namespace(PLATFORM_NS)
    control_plane.kubectl("create", "serviceaccount", INSTALLER, "-n", PLATFORM_NS)
    return sa_kubectl(PLATFORM_NS, INSTALLER)


def grant_installer(kubectl: Kubectl, namespace: str, objects: list[dict]) -> None:
    """What a platform admin grants the installer for one namespace: the built-in `admin` role there,
    get/patch on that Namespace only, and the rules the overlay's Roles grant (RBAC refuses to let
    anyone create a Role granting more than they hold).
    upstream: kubernetes/kubernetes pkg/registry/rbac/validation/rule.go ConfirmNoEscalation @ v1.36.3"""
    subject = {"kind": "ServiceAccount", "name": INSTALLER, "namespace": PLATFORM_NS}
    granted_rules = [rule for o in objects if o["kind"] == "Role" for rule in o["rules"]]
    docs = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": f"{INSTALLER}-{namespace}"},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "resourceNames": [namespace],
                       "verbs": ["get", "patch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{INSTALLER}-{namespace}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": f"{INSTALLER}-{namespace}"},
            "subjects": [subject],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": f"{INSTALLER}-grants", "namespace": namespace},
            "rules": granted_rules,
        },
        *[
            {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": f"{INSTALLER}-{kind.lower()}-{role}", "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
                "subjects": [subject],
            }
            for kind, role in (("ClusterRole", "admin"), ("Role", f"{INSTALLER}-grants"))
        ],
    ]  # fmt: skip
    kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))


@pytest.fixture(scope="session")
def install_overlay(control_plane, installer):
    """install_overlay("overlays/dev") -> (namespace, rendered objects, installer kubectl): the overlay
    applied server-side (field manager civicml-install) by the installer into a fresh namespace that
    enforces "restricted" from the moment it exists."""
    created: list[str] = []

    def install(target: str) -> tuple[str, list[dict], Kubectl]:
        ns = f"civicml-{uuid.uuid4().hex[:8]}"
        objects = render_overlay(control_plane.kubectl, target, ns)
        namespace = next(o for o in objects if o["kind"] == "Namespace")
        control_plane.create_namespace(ns, namespace["metadata"]["labels"])
        created.append(ns)
        grant_installer(control_plane.kubectl, ns, objects)
        installer(
            "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-",
            input="\n---\n".join(json.dumps(o) for o in objects),
        )  # fmt: skip
        return ns, objects, installer

    yield install
    for ns in created:
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        control_plane.kubectl("delete", "clusterrolebinding,clusterrole", f"{INSTALLER}-{ns}", check=False)
