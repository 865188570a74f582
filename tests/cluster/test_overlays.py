"""Every kustomize overlay, rendered and applied server-side by a non-admin installer identity into
a namespace that enforces the "restricted" Pod Security Standard: every object is accepted. The
overlays ship no model server (`civicml deploy` owns it), so the objects civicml deploys there are
then applied the way it applies them (server-side, field manager civicml) by the
civicml-pipeline-runner ServiceAccount, and its pods are scheduled on a KWOK node and become Ready
through the real deployment controller and scheduler."""

from __future__ import annotations

import json

import pytest

from civicml.config import load_config
from civicml.deploy.kubernetes import FIELD_MANAGER, build_objects
from civicml.serving.routing import Routing

OVERLAYS = ["overlays/dev", "overlays/prod"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_applies_server_side_and_model_server_becomes_ready(
    overlay, control_plane, install_overlay, sa_kubectl
):
    ns, objects, installer = install_overlay(overlay)
    kubectl = control_plane.kubectl
    labels = control_plane.kubectl.json("get", "namespace", ns)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    # Every rendered object exists as the installer applied it (server-side apply, one field manager).
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        scope = [] if kind == "Namespace" else ["-n", ns]
        got = installer.json("get", kind.lower(), name, "--show-managed-fields", *scope)
        managers = {m["manager"] for m in got["metadata"].get("managedFields", []) if m["operation"] == "Apply"}
        assert "civicml-install" in managers, f"{kind}/{name} was not server-side applied: {managers}"

    cfg = load_config(None, {"deploy.namespace": ns, "deploy.replicas": 2, "storage.uri": "s3://civicml/registry"})
    served = build_objects(cfg, Routing(champion="v1"))
    runner = sa_kubectl(ns, "civicml-pipeline-runner")
    for obj in served:
        runner("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-", input=json.dumps(obj))
    name = cfg.deploy.name
    kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=90s", timeout=120)
    pods = kubectl.json("get", "pods", "-n", ns, "-l", f"app.kubernetes.io/name={name}")["items"]
    ready = [
        p for p in pods
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    ]  # fmt: skip
    assert len(ready) == 2, json.dumps([p["status"] for p in pods], indent=1)[:3000]
    nodes = {p["spec"]["nodeName"] for p in ready}
    assert nodes <= {"kwok-node-0", "kwok-node-1"}, nodes


def test_restricted_namespace_refuses_a_non_conforming_pod(restricted_namespace, kubectl):
    """The admission the overlays pass is real: a root, privilege-escalating pod is refused."""
    # upstream: kubernetes/kubernetes staging/src/k8s.io/pod-security-admission/policy/check_runAsNonRoot.go @ v1.36.3
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root-pod", "namespace": restricted_namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }
    res = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert res.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in res.stderr, res.stderr
    assert "runAsNonRoot" in res.stderr and "allowPrivilegeEscalation" in res.stderr
