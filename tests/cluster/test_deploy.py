"""`civicml deploy --target kubernetes` and `civicml rollback` against the real API server and the
real deployment controller, run as the civicml-pipeline-runner ServiceAccount with its own token
(TokenRequest), the registry on the real MinIO. KWOK plays the kubelets: pods go Ready, except a
model version whose id ends in "never-ready" (tools/testcluster/stage-never-ready.yaml), which
stands for a model server that never passes its readiness probe.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import FAST, register_trained, train_through_gate

from civicml.config import load_config
from civicml.governance.audit import AuditLog
from civicml.storage.registry import Registry
from civicml.storage.store import open_store

RUNNER = "civicml-pipeline-runner"
NAME = "civicml-model-server"


def train_and_register(cfg, work: Path) -> str:
    """validate -> tune -> train -> evaluate -> gate -> register (as the pipeline does); the version id."""
    train_through_gate(cfg, work)
    return register_again(cfg, work, None)


def register_again(cfg, work: Path, version: str | None) -> str:
    """Register the trained files (again) under `version`: a cheap second committed version."""
    return register_trained(cfg, work, version)["version"]


def civicml(*args: str, kubeconfig: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """The `civicml` CLI in a subprocess, with the store env of the test and this kubeconfig."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "CIVICML_ACTOR": "deploy-test"}
    return subprocess.run(
        [sys.executable, "-m", "civicml.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def served(kubectl, ns: str) -> tuple[str, int]:
    """(champion annotation on the Deployment, number of Ready pods of that champion)."""
    dep = kubectl.json("get", "deployment", NAME, "-n", ns)
    champion = dep["metadata"]["annotations"]["civicml.io/champion"]
    pods = kubectl.json("get", "pods", "-n", ns, "-l", f"app.kubernetes.io/name={NAME}")["items"]
    ready = [
        p for p in pods
        if p["metadata"].get("annotations", {}).get("civicml.io/champion") == champion
        and not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]  # fmt: skip
    return champion, len(ready)


@pytest.fixture
def deploy_env(install_overlay, s3_env, tmp_path, control_plane, sa_kubeconfig):
    """The dev overlay installed, the store Secrets created out of band, a config pointing the
    deploy at that namespace, and the runner's kubeconfig."""
    ns, _, _ = install_overlay("overlays/dev")
    srv = s3_env.server
    # Both store Secrets, created out of band as manifests/base/secret.yaml documents (the test uses
    # the root credential for both; a read-only server credential is MinIO policy, not Kubernetes).
    for secret in ("civicml-object-store", "civicml-model-server-store"):
        control_plane.kubectl(
            "create", "secret", "generic", secret, "-n", ns,
            f"--from-literal=MINIO_ACCESS_KEY={srv.access_key}", f"--from-literal=MINIO_SECRET_KEY={srv.secret_key}",
        )  # fmt: skip
    cfg = load_config(
        None,
        {
            **FAST,
            "deploy.target": "kubernetes",
            "deploy.namespace": ns,
            "deploy.image": "localhost:5001/civicml:0.1.0-dev",
            "deploy.replicas": 2,
            "deploy.rollout_timeout_seconds": 20,
            "deploy.poll_seconds": 0.5,
        },
    )
    config = tmp_path / "civicml.yaml"
    config.write_text(cfg.to_json())
    return ns, cfg, config, sa_kubeconfig(ns, RUNNER)


def test_deploy_second_version_rollback_and_a_rollout_that_never_becomes_ready(deploy_env, tmp_path, control_plane):
    ns, cfg, config, kubeconfig = deploy_env
    kubectl = control_plane.kubectl
    registry = Registry(open_store())
    v1 = train_and_register(cfg, tmp_path / "run")

    res = civicml("deploy", v1, "--target", "kubernetes", "--config", str(config), kubeconfig=kubeconfig)
    assert res.returncode == 0, res.stdout + res.stderr
    assert served(kubectl, ns) == (v1, 2)
    assert registry.get_alias("champion") == v1

    v2 = register_again(cfg, tmp_path / "run", f"{v1}-b")
    res = civicml("deploy", v2, "--target", "kubernetes", "--config", str(config), kubeconfig=kubeconfig)
    assert res.returncode == 0, res.stdout + res.stderr
    assert served(kubectl, ns) == (v2, 2)
    assert registry.get_alias("champion") == v2
    # The real deployment controller rolled a second ReplicaSet (revision 2).
    revisions = {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        for rs in kubectl.json("get", "replicasets", "-n", ns)["items"]
    }
    assert revisions == {"1", "2"}

    res = civicml("rollback", "--reason", "test", "--config", str(config), kubeconfig=kubeconfig)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"champion is {v1} again" in res.stdout
    assert served(kubectl, ns) == (v1, 2)
    assert registry.get_alias("champion") == v1

    bad = register_again(cfg, tmp_path / "run", f"{v1}-never-ready")
    res = civicml("deploy", bad, "--target", "kubernetes", "--config", str(config), kubeconfig=kubeconfig)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    # Whichever fires first: civicml's own wait (rollout_timeout_seconds) or the deployment
    # controller's ProgressDeadlineExceeded (progressDeadlineSeconds, set to the same value).
    assert f"rollout of deployment {ns}/{NAME} " in out, out
    assert "did not finish within 20s" in out or "failed: progress deadline exceeded" in out, out
    assert f"rolled back to the previous champion {v1}" in out and "was not moved" in out, out
    assert "Traceback" not in out
    # Nothing half-moved: the alias, the Deployment and its Ready pods are the previous champion's.
    assert registry.get_alias("champion") == v1
    assert served(kubectl, ns) == (v1, 2)
    events = [r for r in AuditLog(registry.store).records() if r.get("event") == "k8s_rollback"]
    assert events and events[-1]["payload"]["version"] == bad and events[-1]["payload"]["rolled_back_to"] == v1
    ok, detail = AuditLog(registry.store).verify()
    assert ok, detail
