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


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """Whether a LabelSelector selects a pod with `labels`, by Kubernetes' own rules.

    upstream: kubernetes/apimachinery pkg/labels/selector.go (Requirement.Matches) @ v0.31: In needs the key
    and one of the values; NotIn matches when the key is absent or its value is not listed; Exists and
    DoesNotExist test the key; matchLabels are In with one value; all requirements are ANDed, `{}` selects all.
    """
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req["key"], req["operator"], req.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def test_selector_rules_match_kubernetes():
    expr = {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]}
    assert _selects(expr, {}) and _selects(expr, {"app": "b"}) and not _selects(expr, {"app": "a"})
    assert _selects({}, {"x": "y"}) and not _selects({"matchLabels": {"x": "y"}}, {})


def _policies_selecting(objects, labels):
    return {
        o["metadata"]["name"]: o
        for o in objects
        if o["kind"] == "NetworkPolicy" and _selects(o["spec"]["podSelector"], labels)
    }


def test_console_pod_gets_no_api_server_or_kubeflow_flows(objects):
    # The labels the console's pods really carry, read from its Deployment (not restated here).
    labels = _named(objects, "Deployment", "civicml-review")["spec"]["template"]["metadata"]["labels"]
    selecting = _policies_selecting(objects, labels)
    # Egress: DNS, the object store (it reads the registry, writes approvals and audit) and istiod for its
    # sidecar (allow-egress-istiod: every pod in the mesh); nothing else.
    egress_ports = {
        (p["protocol"], p["port"])
        for pol in selecting.values()
        if "Egress" in pol["spec"]["policyTypes"]
        for rule in pol["spec"].get("egress", [])
        for p in rule.get("ports", [])
    }
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 9000), ("TCP", 15012)}, sorted(selecting)
    assert "allow-egress-kube-apiserver" not in selecting
    # Ingress: the gateway on 8090, nothing from the kubeflow namespace.
    ingress = [p for pol in selecting.values() for rule in pol["spec"].get("ingress", []) for p in rule["ports"]]
    assert ingress == [{"protocol": "TCP", "port": 8090}]


def test_pipeline_step_pods_still_reach_the_api_server(objects):
    # A KFP step pod carries none of the excluded labels: the exclusion must not cut it off.
    selecting = _policies_selecting(objects, {"pipelines.kubeflow.org/v2_component": "true"})
    assert "allow-egress-kube-apiserver" in selecting and "allow-egress-kubeflow-control-plane" in selecting
    model_server = _policies_selecting(objects, {"app.kubernetes.io/name": "civicml-model-server"})
    assert "allow-egress-kube-apiserver" not in model_server
