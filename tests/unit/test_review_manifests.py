"""The review console's manifests: no API rights, ingress from the gateway only, a config that loads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from civicml.config import parse_config
from civicml.deploy.security import pod_spec_of, restricted_violations

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def objects():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to render manifests/base (it is installed on CI)")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "manifests" / "base")], capture_output=True, text=True, check=True
    ).stdout
    return [o for o in yaml.safe_load_all(out) if o]


def _named(objects, kind, name):
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert found, f"{kind}/{name} is not in manifests/base"
    return found[0]


def test_console_pod_is_restricted_and_has_no_api_token(objects):
    dep = _named(objects, "Deployment", "civicml-review")
    spec = pod_spec_of(dep)
    assert restricted_violations(spec) == []
    assert spec["automountServiceAccountToken"] is False and spec["serviceAccountName"] == "civicml-review"
    assert _named(objects, "ServiceAccount", "civicml-review")["automountServiceAccountToken"] is False
    for binding in (o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert all(s.get("name") != "civicml-review" for s in binding.get("subjects", [])), binding["metadata"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    # Its own store credential (read the registry, write approvals/ and audit/ only; docs/review-console.md).
    assert env["MINIO_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "civicml-review-store"


def test_only_the_gateway_may_reach_the_console(objects):
    pol = _named(objects, "NetworkPolicy", "civicml-review")
    assert pol["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "civicml-review"}
    (rule,) = pol["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "istio-system"}
    assert peer["podSelector"]["matchLabels"] == {"app": "istio-ingressgateway"}
    assert rule["ports"] == [{"protocol": "TCP", "port": 8090}]
    svc = _named(objects, "Service", "civicml-review")
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "civicml-review"}


def test_the_shipped_console_config_loads_and_trusts_only_the_gateway(objects):
    cm = _named(objects, "ConfigMap", "civicml-review-config")
    cfg = parse_config(yaml.safe_load(cm["data"]["civicml.yaml"]), where="civicml-review-config")
    assert cfg.review.behind_gateway and cfg.review.user_header == "kubeflow-userid"
    assert cfg.review.approvers == []  # nobody approves until the agency names its approvers
    dep = _named(objects, "Deployment", "civicml-review")
    args = pod_spec_of(dep)["containers"][0]["args"]
    assert args[:1] == ["review"] and "/etc/civicml/civicml.yaml" in args
