"""Kubernetes deploy backend: objects validate (strict) and meet "restricted"; apply/rollout/rollback
against a stand-in for `kubernetes.client.ApiClient` (the HTTP edge) that records every call."""

from __future__ import annotations

import copy
import json

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from civicml.config import RunConfig
from civicml.deploy.kubernetes import (
    APPLY_CONTENT_TYPE,
    CONFIG_ANNOTATION,
    K8S_PERMISSIONS,
    ROUTING_ANNOTATION,
    DeployError,
    KubeClient,
    build_objects,
    deploy_version,
    pinned_documents,
)
from civicml.deploy.security import pod_spec_of, restricted_violations
from civicml.governance.audit import AuditLog
from civicml.governance.trust import commit_version
from civicml.serving.routing import CHALLENGER, CHAMPION, ROUTING_FILE_ENV, Routing, current_routing
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

K8S_VERSIONS = ("1.30.0", "1.33.0")
VERB = {"PATCH": "patch", "GET": "get"}
RESOURCE = {
    "networkpolicies": ("networking.k8s.io", "networkpolicies"),
    "services": ("", "services"),
    "deployments": ("apps", "deployments"),
}


class FakeApiClient:
    """Records raw API calls; Deployments become ready unless their champion is in `broken`."""

    def __init__(self, broken=(), ready_after=2, deadline_exceeded=False):
        self.calls: list[dict] = []
        self.objects: dict[str, dict] = {}
        self.broken = set(broken)
        self.ready_after = ready_after
        self.deadline_exceeded = deadline_exceeded
        self.polls = 0

    def call_api(
        self, resource_path, method, path_params=None, query_params=None, header_params=None, body=None, **kwargs
    ):
        self.calls.append(
            {
                "path": resource_path,
                "method": method,
                "query": query_params,
                "headers": header_params,
                "body": copy.deepcopy(body),
                "kwargs": kwargs,
            }
        )
        if method == "PATCH":
            stored = copy.deepcopy(body)
            old = self.objects.get(resource_path)
            gen = (old["metadata"]["generation"] + 1) if old else 1
            stored["metadata"]["generation"] = gen
            self.objects[resource_path] = stored
            self.polls = 0
            return stored
        if method == "GET":
            dep = copy.deepcopy(self.objects[resource_path])
            self.polls += 1
            want = dep["spec"]["replicas"]
            champion = dep["metadata"]["annotations"]["civicml.io/champion"]
            status = {
                "observedGeneration": dep["metadata"]["generation"] if self.polls > 1 else 0,
                "replicas": want,
                "updatedReplicas": want,
                "availableReplicas": 0,
            }
            if champion not in self.broken and self.polls >= self.ready_after:
                status["availableReplicas"] = want
            if champion in self.broken and self.deadline_exceeded:
                status["conditions"] = [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": "pods never ready",
                    }
                ]
            dep["status"] = status
            return dep
        raise AssertionError(f"unexpected {method} {resource_path}")


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.delenv("CIVICML_STORE_URI", raising=False)
    monkeypatch.delenv(ROUTING_FILE_ENV, raising=False)
    reg = Registry(LocalStore(tmp_path / "store"))
    for v in ("v1", "v2", "v3"):
        commit_version(reg, v, {}, {"status": "approved"})
    cfg = RunConfig.model_validate(
        {
            "storage": {"uri": "s3://civicml/registry"},
            "deploy": {"target": "kubernetes", "replicas": 2, "rollout_timeout_seconds": 60, "poll_seconds": 5},
        }
    )
    return cfg, reg


def _validate(objects):
    for obj in objects:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        spec = pod_spec_of(obj)
        if spec is not None:
            assert restricted_violations(spec) == []


def test_objects_validate_strict_and_restricted(setup):
    cfg, _ = setup
    objects = build_objects(cfg, Routing(champion="v1", challenger="v2", challenger_share=0.2))
    assert [o["kind"] for o in objects] == ["NetworkPolicy", "Service", "Deployment"]
    _validate(objects)
    dep = objects[2]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert pod["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e for e in c["env"]}
    assert env["CIVICML_STORE_URI"]["value"] == "s3://civicml/registry"
    for var in ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
        # The server's own (read-only) credential, not the pipeline's read-write one.
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "civicml-model-server-store", "key": var}
    assert "requests" in c["resources"] and "limits" in c["resources"]
    routing, config_json = pinned_documents(dep)
    assert (routing.champion, routing.challenger, routing.challenger_share) == ("v1", "v2", 0.2)
    # The pinned config parses back into the same RunConfig, and holds no credentials.
    assert RunConfig.from_json(config_json) == cfg
    assert "SECRET" not in config_json.upper().replace("SECRET_NAME", "")
    # The pods read both documents from their own annotations (downward API), not from a shared object.
    (config_volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    paths = {i["path"]: i["fieldRef"]["fieldPath"] for i in config_volume["downwardAPI"]["items"]}
    assert paths == {
        "routing.json": f"metadata.annotations['{ROUTING_ANNOTATION}']",
        "civicml.yaml": f"metadata.annotations['{CONFIG_ANNOTATION}']",
    }
    assert env[ROUTING_FILE_ENV]["value"] == "/etc/civicml/routing.json"
    assert not any("configMap" in v for v in pod["volumes"])


def test_ingress_is_limited_to_the_configured_namespaces(setup):
    # Item 12: only the server's own namespace and deploy.client_namespaces reach its port.
    cfg, _ = setup
    cfg = cfg.model_copy(update={"deploy": cfg.deploy.model_copy(update={"client_namespaces": ["portal"]})})
    policy = build_objects(cfg, Routing(champion="v1"))[0]
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "civicml-model-server"}}
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "portal"}}},
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_each_routing_is_its_own_pod_template(setup):
    # `kubectl rollout undo` restores an old pod template; it must carry the old versions with it.
    cfg, _ = setup
    one = build_objects(cfg, Routing(champion="v1"))[2]
    two = build_objects(cfg, Routing(champion="v2"))[2]
    assert one["spec"]["template"] != two["spec"]["template"]
    assert pinned_documents(one)[0].champion == "v1" and pinned_documents(two)[0].champion == "v2"


def test_invalid_object_is_caught_by_validator(setup):
    # Guard that the validator above can fail: a typo in a field name is rejected in strict mode.
    cfg, _ = setup
    dep = build_objects(cfg, Routing(champion="v1"))[2]
    dep["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, "1.30.0", strict=True)


def _assert_permissions_cover(calls):
    allowed = {(g, r): set(v) for g, r, v in K8S_PERMISSIONS}
    used = set()
    for call in calls:
        resource = RESOURCE[call["path"].split("/")[-2]]
        assert VERB[call["method"]] in allowed[resource], call["path"]
        used.add((resource, VERB[call["method"]]))
    return used


def test_deploy_success_applies_exactly_the_validated_objects(setup):
    cfg, reg = setup
    reg.set_alias(CHAMPION, "v1", by="t", reason="t")
    expected = deploy_version(cfg, reg, "v2", dry_run=True, mode="replace")["objects"]
    _validate(expected)
    api, clock = FakeApiClient(), FakeClock()
    result = deploy_version(cfg, reg, "v2", client=KubeClient(api), mode="replace", sleep=clock.sleep, clock=clock)
    patches = [c for c in api.calls if c["method"] == "PATCH"]
    assert [c["body"] for c in patches] == expected
    for c in patches:
        assert c["headers"]["Content-Type"] == APPLY_CONTENT_TYPE
        assert ("fieldManager", "civicml") in c["query"] and ("force", "true") in c["query"]
    assert [c["path"] for c in patches] == [
        "/apis/networking.k8s.io/v1/namespaces/civicml/networkpolicies/civicml-model-server",
        "/api/v1/namespaces/civicml/services/civicml-model-server",
        "/apis/apps/v1/namespaces/civicml/deployments/civicml-model-server",
    ]
    assert any(c["method"] == "GET" for c in api.calls)
    used = _assert_permissions_cover(api.calls)
    # Every non-"create" permission is exercised ("create" is how the API server authorizes an apply that creates).
    declared = {((g, r), v) for g, r, verbs in K8S_PERMISSIONS for v in verbs if v != "create"}
    assert used == declared
    assert result["alias"] == CHAMPION and reg.get_alias(CHAMPION) == "v2"
    assert [r["event"] for r in AuditLog(reg.store).records()][-1] == "k8s_deployed"


def test_deploy_as_challenger_keeps_champion(setup):
    cfg, reg = setup
    reg.set_alias(CHAMPION, "v1", by="t", reason="t")
    api, clock = FakeApiClient(), FakeClock()
    deploy_version(cfg, reg, "v2", client=KubeClient(api), mode="challenger", sleep=clock.sleep, clock=clock)
    assert reg.get_alias(CHAMPION) == "v1" and reg.get_alias(CHALLENGER) == "v2"
    r = current_routing(reg)
    assert r.challenger_share == cfg.deploy.challenger_traffic
    dep = next(c["body"] for c in api.calls if c["path"].endswith("deployments/civicml-model-server"))
    routing, _ = pinned_documents(dep)
    assert (routing.champion, routing.challenger) == ("v1", "v2")


@pytest.mark.parametrize("deadline_exceeded", [False, True])
def test_failed_rollout_rolls_back_to_previous_champion(setup, deadline_exceeded):
    cfg, reg = setup
    reg.set_alias(CHAMPION, "v1", by="t", reason="t")
    previous_objects = build_objects(cfg, current_routing(reg))
    api, clock = FakeApiClient(broken={"v3"}, deadline_exceeded=deadline_exceeded), FakeClock()
    with pytest.raises(DeployError) as info:
        deploy_version(cfg, reg, "v3", client=KubeClient(api), mode="replace", sleep=clock.sleep, clock=clock)
    msg = str(info.value)
    assert "rolled back to the previous champion v1" in msg and "was not moved" in msg
    assert ("progress deadline exceeded" in msg) if deadline_exceeded else ("did not finish within 60s" in msg)
    patches = [c["body"] for c in api.calls if c["method"] == "PATCH"]
    assert patches[:3] == build_objects(cfg, Routing(champion="v3"))
    assert patches[3:] == previous_objects
    _validate(patches)
    assert reg.get_alias(CHAMPION) == "v1"
    events = [r["event"] for r in AuditLog(reg.store).records()]
    assert events[-1] == "k8s_rollback" and "k8s_deployed" not in events
    if not deadline_exceeded:
        assert clock.t >= cfg.deploy.rollout_timeout_seconds


def test_failed_first_deploy_has_nothing_to_roll_back(setup):
    cfg, reg = setup
    api, clock = FakeApiClient(broken={"v1"}), FakeClock()
    with pytest.raises(DeployError, match="no previous champion"):
        deploy_version(cfg, reg, "v1", client=KubeClient(api), sleep=clock.sleep, clock=clock)
    assert reg.get_alias(CHAMPION) is None
    assert AuditLog(reg.store).records()[-1]["event"] == "k8s_rollout_failed"


def test_local_store_is_refused_before_anything_is_applied(setup):
    cfg, reg = setup
    cfg = cfg.model_copy(update={"storage": cfg.storage.model_copy(update={"uri": ".civicml"})})
    api = FakeApiClient()
    with pytest.raises(DeployError, match="s3://"):
        deploy_version(cfg, reg, "v1", client=KubeClient(api))
    assert api.calls == []


def test_tampered_version_is_not_deployed(setup):
    cfg, reg = setup
    reg.store.put_bytes("staging/v9/model/model.json", b"{}")
    commit_version(
        reg,
        "v9",
        {"model/model.json": {"key": "staging/v9/model/model.json", "sha256": "0" * 64, "size": 2}},
        {"status": "approved"},
    )
    api = FakeApiClient()
    with pytest.raises(Exception, match="integrity"):
        deploy_version(cfg, reg, "v9", client=KubeClient(api))
    assert api.calls == []


def test_cli_dry_run_prints_valid_yaml(setup, tmp_path, monkeypatch):
    from civicml.cli import app

    cfg, reg = setup
    reg.set_alias(CHAMPION, "v1", by="t", reason="t")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CIVICML_STORE_URI", str(tmp_path / "store"))
    (tmp_path / "civicml.yaml").write_text(yaml.safe_dump(json.loads(cfg.to_json())))
    result = CliRunner().invoke(app, ["deploy", "v2", "--target", "kubernetes", "--dry-run", "--as", "challenger"])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [d["kind"] for d in docs] == ["NetworkPolicy", "Service", "Deployment"]
    _validate(docs)
    assert pinned_documents(docs[2])[0].challenger == "v2"
    assert reg.get_alias(CHALLENGER) is None  # dry run moved nothing
    bad = CliRunner().invoke(app, ["deploy", "v2", "--target", "moon"])
    assert bad.exit_code == 1 and "--target must be local or kubernetes" in bad.output
