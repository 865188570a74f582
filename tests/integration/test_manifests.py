"""Kustomize manifests: render, validate strictly, enforce restricted PSS and RBAC.

Rendering needs ``kubectl`` (``kubectl kustomize``); those tests skip cleanly
where it is absent. The RBAC test reads ``manifests/base/role.yaml`` directly
and runs everywhere.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import ValidationError, latest_version, major_minor

from civicml.deploy.security import pod_spec_of, restricted_violations

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
TARGETS = ["base", "overlays/dev", "overlays/prod"]
OVERLAYS = [t for t in TARGETS if t.startswith("overlays/")]
K8S_VERSIONS = ("1.30", major_minor(latest_version()))

SECRET_NAME = "civicml-object-store"
SECRET_KEYS = {"MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"}

# Modules that declare the Kubernetes permissions their code uses.
PERMISSION_MODULES = ("civicml.tuning.katib_backend", "civicml.deploy.kubernetes")


needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


def _render(target: str) -> list[dict]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / target)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=TARGETS)
def rendered(request) -> tuple[str, list[dict]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed")
    return request.param, _render(request.param)


def _find(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _load_tool():
    spec = importlib.util.spec_from_file_location("check_manifests", REPO / "tools" / "check_manifests.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


# --- rendering and schemas -------------------------------------------------------------------------


def test_every_object_validates_strictly(rendered):
    _, objects = rendered
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy", "ConfigMap"} <= kinds
    # The model server's Deployment and Service are `civicml deploy`'s alone (item 11).
    assert not [o for o in objects if o["metadata"]["name"] == "civicml-model-server" and o["kind"] != "ServiceAccount"]
    for obj in objects:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        assert obj["metadata"].get("namespace", "civicml") == "civicml", obj["metadata"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "civicml"


def test_strict_validation_rejects_unknown_fields():
    # Guards the test above: strict mode must fail on a typo, not ignore it.
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"prots": []}}
    with pytest.raises(ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)


# --- pod security ----------------------------------------------------------------------------------


def _civicml_deploy_objects() -> list[dict]:
    from civicml.config import RunConfig
    from civicml.deploy.kubernetes import build_objects
    from civicml.serving.routing import Routing

    return build_objects(RunConfig(), Routing(champion="v1"), "s3://civicml/registry")


def test_every_pod_template_is_restricted(rendered):
    # The kustomize targets ship no pods of their own; with what `civicml deploy` adds, every pod is restricted.
    _, objects = rendered
    everything = objects + _civicml_deploy_objects()
    pod_specs = [(o, pod_spec_of(o)) for o in everything if pod_spec_of(o) is not None]
    assert pod_specs, "expected at least the model-server Deployment"
    for obj, spec in pod_specs:
        assert restricted_violations(spec) == [], obj["metadata"]["name"]
        for container in spec["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["runAsUser"] == 10001
            assert container.get("resources", {}).get("limits"), "every container needs limits"


def test_namespace_enforces_restricted_and_katib_injection(rendered):
    _, objects = rendered
    labels = _find(objects, "Namespace", "civicml")["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert labels["katib.kubeflow.org/metrics-collector-injection"] == "enabled"


def test_checker_catches_a_privileged_root_model_server():
    deployment = copy.deepcopy(_find(_civicml_deploy_objects(), "Deployment", "civicml-model-server"))
    spec = deployment["spec"]["template"]["spec"]
    spec["securityContext"] = {"runAsUser": 0}
    spec["containers"][0]["securityContext"] = {"privileged": True, "allowPrivilegeEscalation": True}
    spec["volumes"].append({"name": "host", "hostPath": {"path": "/var/run"}})

    found = "\n".join(restricted_violations(spec))

    assert "containers[server]: privileged must not be true" in found
    assert "containers[server]: runAsNonRoot must be true" in found
    assert "pod: runAsUser must not be 0" in found
    assert "uses hostPath" in found
    assert _load_tool().check_objects([deployment], K8S_VERSIONS[:1], require_pinned_images=True)


# --- model server ----------------------------------------------------------------------------------


def test_model_server_has_one_owner(rendered):
    # Item 11: kustomize ships none of the objects `civicml deploy` applies, so the two appliers
    # never own different fields of one Deployment (tests/cluster applies both in sequence).
    _, objects = rendered
    owned = {(o["kind"], o["metadata"]["name"]) for o in _civicml_deploy_objects()}
    assert not owned & {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert _find(objects, "ServiceAccount", "civicml-model-server")["automountServiceAccountToken"] is False
    settings = _find(objects, "ConfigMap", "civicml-settings")["data"]
    assert settings["CIVICML_STORE_URI"] == "s3://civicml/registry"


def test_network_policies_default_deny_then_allow(rendered):
    _, objects = rendered
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    deny = policies["default-deny-all"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    def ports(policy, direction):
        return {(p["protocol"], p["port"]) for rule in policy[direction] for p in rule["ports"]}

    assert ports(policies["allow-dns"], "egress") == {("UDP", 53), ("TCP", 53)}
    assert ports(policies["allow-egress-kube-apiserver"], "egress") == {("TCP", 443), ("TCP", 6443)}
    assert ports(policies["allow-egress-object-store"], "egress") == {("TCP", 9000)}
    # Item 12: no blanket ingress to the server here; `civicml deploy` applies one from the config.
    assert not any(
        p["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "civicml-model-server"
        for p in policies.values()
        if "Ingress" in p["policyTypes"]
    )
    # Trials and the model server hold no API token: no API server egress for them.
    api = policies["allow-egress-kube-apiserver"]["podSelector"]["matchExpressions"]
    assert {"key": "app.kubernetes.io/component", "operator": "NotIn", "values": ["katib-trial"]} in api


def test_early_stopping_path_is_allowed_exactly(rendered):
    # Item 4: the trial's metrics collector calls SetTrialStatus on the Experiment's early-stopping
    # service, port 6788, in the Experiment's namespace, and exits fatally if it cannot.
    # upstream: kubeflow/katib cmd/metricscollector/v1beta1/file-metricscollector/main.go:313-327 @ v0.19.0
    # upstream: kubeflow/katib pkg/controller.v1beta1/consts/const.go:89 @ v0.19.0 (DefaultEarlyStoppingPort)
    # upstream: kubeflow/katib pkg/webhook/v1beta1/pod/utils.go:279 @ v0.19.0 (trial pods labelled .../trial)
    # upstream: kubeflow/katib pkg/controller.v1beta1/util/labels.go:34 @ v0.19.0 (suggestion pods .../suggestion)
    _, objects = rendered
    policies = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    trial = {"matchExpressions": [{"key": "katib.kubeflow.org/trial", "operator": "Exists"}]}
    suggestion = {"matchExpressions": [{"key": "katib.kubeflow.org/suggestion", "operator": "Exists"}]}
    egress = policies["allow-katib-early-stopping-egress"]
    assert egress["podSelector"] == trial
    assert egress["egress"] == [{"to": [{"podSelector": suggestion}], "ports": [{"protocol": "TCP", "port": 6788}]}]
    ingress = policies["allow-katib-early-stopping-ingress"]
    assert ingress["podSelector"] == suggestion
    assert ingress["ingress"] == [{"from": [{"podSelector": trial}], "ports": [{"protocol": "TCP", "port": 6788}]}]
    # The sidecar's metrics reach katib-db-manager (6789) in kubeflow.
    control = policies["allow-egress-kubeflow-control-plane"]
    assert {"protocol": "TCP", "port": 6789} in control["egress"][0]["ports"]


def test_istio_sidecars_reach_istiod(rendered):
    # Item 9: Kubeflow Profile namespaces are Istio-injected; a sidecar that cannot reach istiod
    # (xDS/CA on 15012) never becomes ready, under the default-deny egress.
    _, objects = rendered
    policy = _find(objects, "NetworkPolicy", "allow-egress-istiod")["spec"]
    assert policy["podSelector"] == {}
    (rule,) = policy["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 15012}]
    assert rule["to"][0]["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "istio-system"}}


# --- images and credentials ------------------------------------------------------------------------


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_pin_image_tags(overlay):
    tool = _load_tool()
    images = []
    for obj in _render(overlay):
        spec = pod_spec_of(obj)
        if spec is None:
            continue
        images += [c["image"] for c in spec["containers"]]
        assert tool.image_problems(obj) == []
    # Any pod template an overlay renders gets the pinned image; the kustomization pins it.
    kustomization = yaml.safe_load((MANIFESTS / overlay / "kustomization.yaml").read_text())
    pins = {i["name"]: i for i in kustomization["images"]}
    assert pins["civicml"].get("newTag") not in (None, "", "latest") or pins["civicml"].get("digest")
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag and tag not in ("", "latest"), image


def test_image_pin_check_flags_latest_and_untagged():
    tool = _load_tool()

    def deployment(image):
        return {
            "kind": "Deployment",
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
        }

    assert tool.image_problems(deployment("civicml"))
    assert tool.image_problems(deployment("registry:5000/civicml"))
    assert tool.image_problems(deployment("registry.example.gov/civicml:latest"))
    assert not tool.image_problems(deployment("registry:5000/civicml:0.1.0"))
    assert not tool.image_problems(deployment("civicml@sha256:" + "0" * 64))


def test_kfp_launcher_references_credentials_without_values(rendered):
    _, objects = rendered
    launcher = _find(objects, "ConfigMap", "kfp-launcher")["data"]
    assert launcher["defaultPipelineRoot"] == "minio://civicml/pipeline-root"
    providers = yaml.safe_load(launcher["providers"])
    # minio:// roots are served by the "minio" block; s3:// by "s3".
    assert {"minio", "s3"} <= set(providers)
    for name, provider in providers.items():
        default = provider["default"]
        assert default["endpoint"] == "minio-service.kubeflow:9000", name
        assert default["disableSSL"] is True
        credentials = default["credentials"]
        assert credentials["fromEnv"] is False
        assert credentials["secretRef"] == {
            "secretName": SECRET_NAME,
            "accessKeyKey": "MINIO_ACCESS_KEY",
            "secretKeyKey": "MINIO_SECRET_KEY",
        }
    assert _load_tool().credential_problems(_find(objects, "ConfigMap", "kfp-launcher")) == []


def test_no_secret_values_are_rendered_or_templated(rendered):
    _, objects = rendered
    tool = _load_tool()
    for obj in objects:
        assert tool.credential_problems(obj) == [], obj["metadata"]["name"]
    # Applying the overlay must never create or overwrite the real Secret.
    assert not [o for o in objects if o["kind"] == "Secret"]

    (template,) = [d for d in yaml.safe_load_all((MANIFESTS / "base" / "secret.yaml").read_text()) if d]
    kubernetes_validate.validate(template, K8S_VERSIONS[0], strict=True)
    assert template["metadata"]["name"] == SECRET_NAME
    assert "data" not in template and "stringData" not in template
    text = (MANIFESTS / "base" / "secret.yaml").read_text()
    for key in SECRET_KEYS:
        assert f'--from-literal={key}="${key}"' in text  # documented, sourced from env


def test_credential_check_flags_literal_values():
    tool = _load_tool()
    leaky_launcher = {
        "kind": "ConfigMap",
        "data": {"providers": "s3:\n  default:\n    credentials:\n      accessKey: AKIAEXAMPLE\n"},
    }
    leaky_secret = {"kind": "Secret", "stringData": {"MINIO_SECRET_KEY": "hunter2"}}
    leaky_env = {
        "kind": "Pod",
        "spec": {"containers": [{"name": "c", "env": [{"name": "MINIO_SECRET_KEY", "value": "hunter2"}]}]},
    }
    assert tool.credential_problems(leaky_launcher)
    assert tool.credential_problems(leaky_secret)
    assert tool.credential_problems(leaky_env)


@needs_kubectl
def test_check_manifests_tool_passes(capsys):
    assert _load_tool().main([]) == 0
    out = capsys.readouterr().out
    assert "OK:" in out and "overlays/prod" in out


# --- RBAC ------------------------------------------------------------------------------------------


def _roles() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all((MANIFESTS / "base" / "role.yaml").read_text()) if d]
    assert all(d["kind"] == "Role" for d in docs), "role.yaml holds Roles only (no ClusterRoles)"
    return {d["metadata"]["name"]: d for d in docs}


def _grants(role: dict) -> set[tuple[str, str, str, str]]:
    """(group, resource, verb, name or "") for every grant; "" = any object of that resource."""
    return {
        (group, resource, verb, name)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        for name in (rule.get("resourceNames") or [""])
    }


def _declared_permissions() -> set[tuple[str, str, str]]:
    missing = [m for m in PERMISSION_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"permission-declaring module(s) not written yet: {', '.join(missing)}")
    from civicml.config import RunConfig
    from civicml.deploy.kubernetes import owned_object_names

    names = owned_object_names(RunConfig())
    declared = set()
    for module_name in PERMISSION_MODULES:
        # Import errors and a missing constant fail the test: only absence skips.
        permissions = importlib.import_module(module_name).K8S_PERMISSIONS
        for group, resource, verbs in permissions:
            name = names.get(resource, "") if module_name == "civicml.deploy.kubernetes" else ""
            declared |= {(group, resource, verb, name) for verb in verbs}
    return declared


def _kfp_runtime_permissions() -> set[tuple[str, str, str, str]]:
    from civicml.orchestration.kfp_client import KFP_RUNTIME_PERMISSIONS

    return {
        (group, resource, verb, name)
        for group, resource, verbs, names in KFP_RUNTIME_PERMISSIONS
        for verb in verbs
        for name in (names or ("",))
    }


def test_no_role_grants_dangerous_permissions():
    for name, role in _roles().items():
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), f"{name}: wildcard in {field}"
            resources = set(rule["resources"])
            assert not resources & {"pods/exec", "pods/attach", "pods/portforward", "nodes/proxy"}, name
            assert not set(rule["verbs"]) & {"escalate", "bind", "impersonate"}, name
            if "secrets" in resources:
                assert rule.get("resourceNames"), f"{name}: secrets only by resourceNames"
                assert set(rule["verbs"]) <= {"get"}, f"{name}: secrets are read-only"


def test_pipeline_runner_role_matches_declared_permissions():
    role = _roles()["civicml-pipeline-runner"]
    assert _grants(role) == _declared_permissions()
    # Item 12: the runner writes only the model server's own objects, and no ConfigMap at all
    # (it cannot rewrite civicml-settings or kfp-launcher).
    for group, resource, verb, name in _grants(role):
        if group in ("", "apps") and verb in ("create", "patch", "update"):
            assert name == "civicml-model-server", (resource, verb)
        assert resource != "configmaps"


def test_kfp_runtime_role_is_what_kfp_2_17_calls():
    # upstream: kubeflow/pipelines backend/src/v2/driver/root_dag.go:103 @ 2.17.0 (GET configmap kfp-launcher)
    # upstream: kubeflow/pipelines backend/src/v2/config/env.go:73-80 @ 2.17.0 (only NotFound tolerated)
    # upstream: kubeflow/pipelines backend/src/v2/objectstore/object_store.go:391 @ 2.17.0 (GET secret)
    # upstream: kubeflow/pipelines backend/src/v2/driver/k8s.go:1198 @ 2.17.0 (GET own pod)
    # upstream: kubeflow/pipelines manifests/kustomize/base/pipeline/pipeline-runner-role.yaml @ 2.17.0
    roles = _roles()
    assert set(roles) == {"civicml-pipeline-runner", "civicml-kfp-runtime"}
    runtime = roles["civicml-kfp-runtime"]
    assert _grants(runtime) == _kfp_runtime_permissions()
    assert ("", "configmaps", "get", "kfp-launcher") in _grants(runtime)
    assert ("", "secrets", "get", SECRET_NAME) in _grants(runtime)


def test_compiled_pipelines_use_no_pipeline_job_time_placeholders():
    # The driver GETs the Argo Workflow only to resolve these placeholders; the Role omits
    # argoproj.io/workflows, so a pipeline using them would need it added.
    # upstream: kubeflow/pipelines backend/src/v2/cmd/driver/main.go:178,242-246 @ 2.17.0
    for path in (REPO / "pipelines" / "compiled").glob("*.yaml"):
        text = path.read_text()
        assert "pipeline_job_create_time" not in text and "pipeline_job_schedule_time" not in text, path


def test_role_bindings_bind_only_the_pipeline_runner():
    docs = [d for d in yaml.safe_load_all((MANIFESTS / "base" / "rolebinding.yaml").read_text()) if d]
    assert {d["roleRef"]["name"] for d in docs} == set(_roles())
    for binding in docs:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "civicml-pipeline-runner", "namespace": "civicml"}
        ]
