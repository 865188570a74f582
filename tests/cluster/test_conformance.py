"""Issue 17 on the real control plane (tests/cluster/conftest.py): the runner's `can-i` list, Katib's
trial and suggestion pods under "restricted", `kubectl rollout undo`, one owner of the model server,
`civicml doctor` against namespaces each missing one piece, and a 403 reported in one line."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from civicml.config import RunConfig
from civicml.deploy.kubernetes import (
    FIELD_MANAGER,
    ROUTING_ANNOTATION,
    KubeClient,
    build_objects,
    deploy_version,
    pinned_documents,
)
from civicml.governance.promotion import promote
from civicml.governance.trust import commit_version
from civicml.orchestration.doctor import RUNNER_DENIED, runner_permissions
from civicml.serving.routing import CHAMPION, Routing
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore, open_store
from civicml.tuning import katib_backend as kb

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "katib.kubeflow.org/metrics-collector-injection": "enabled",
}
RUNNER = "civicml-pipeline-runner"
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def _base_objects(kubectl, namespace: str) -> list[dict]:
    out = kubectl("kustomize", str(MANIFESTS / "base")).stdout
    objects = [d for d in yaml.safe_load_all(out) if d and d["kind"] != "Namespace"]
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespace
    return objects


def _apply(kubectl, objects: list[dict], *extra: str):
    text = "---\n".join(yaml.safe_dump(o) for o in objects)
    return kubectl("apply", "--server-side", "--field-manager=kubectl-kustomize", "-f", "-", *extra, input=text)


@pytest.fixture
def civicml_ns(make_namespace, kubectl):
    """A restricted namespace with manifests/base applied (as an admin would)."""
    ns = make_namespace(RESTRICTED, prefix="civicml")
    _apply(kubectl, _base_objects(kubectl, ns))
    return ns


# --- item 1 / Must show: the runner's can-i list is exactly what KFP and civicml need ------------------------


#: Every feature manifests/base grants the runner for: Katib tuning, Kubernetes deploy, the KFP runtime, and
#: the TrainJob backend (trainer-role.yaml).
ALL_FEATURES = {"storage": {"uri": "s3://civicml/registry"}, "training": {"backend": "trainjob"}}


def _target(perm: tuple[str, str, str, str]) -> str:
    group, resource, _, name = perm
    return (f"{resource}.{group}" if group else resource) + (f"/{name}" if name else "")


#: API groups of CRDs the test cluster does not serve (no Katib, Argo or Trainer here).
CRD_GROUPS = {"kubeflow.org", "argoproj.io", "trainer.kubeflow.org"}


def _can(kubectl_as, ns: str, perm: tuple[str, str, str, str]) -> bool:
    """`kubectl auth can-i VERB RESOURCE[/NAME]` as the account; for a CRD the server does not serve,
    the SelfSubjectAccessReview that command sends, sent as it is: kubectl resolves the resource by
    discovery first and, when that fails, drops the group and asks about a resource that does not exist.
    upstream: kubernetes/kubernetes staging/src/k8s.io/kubectl/pkg/cmd/auth/cani.go (resourceFor) @ v1.36.3
    """
    group, resource, verb, name = perm
    if group not in CRD_GROUPS:
        res = kubectl_as("auth", "can-i", verb, _target(perm), "-n", ns, check=False)
        assert res.stdout.strip() in ("yes", "no"), res.stderr
        return res.stdout.strip() == "yes"
    resource, _, sub = resource.partition("/")
    attrs = {"namespace": ns, "group": group, "resource": resource, "subresource": sub, "verb": verb, "name": name}
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}
    review["spec"] = {"resourceAttributes": attrs}
    out = kubectl_as("create", "--validate=false", "-f", "-", "-o", "json", input=json.dumps(review)).stdout
    return bool(json.loads(out)["status"].get("allowed"))


def _can_i_list(kubectl_as, ns: str) -> set[tuple[str, str, str, str]]:
    """`kubectl auth can-i --list` flattened to (group, resource, verb, name) rows."""
    # upstream: kubernetes/kubernetes staging/src/k8s.io/kubectl/pkg/cmd/auth/cani.go:381-414 @ v1.36.3
    #   (printStatus: Resources, Non-Resource URLs, Resource Names, Verbs; rules with several groups
    #   print one row per group as resource.group)
    listing = kubectl_as("auth", "can-i", "--list", "-n", ns).stdout.splitlines()[1:]
    granted = set()
    for line in listing:
        m = re.match(r"^(\S*)\s*\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$", line)
        assert m, f"unparsed can-i --list row: {line!r}"
        resource, non_resource, names, verbs = m.groups()
        if non_resource:
            continue  # /api, /version, /healthz...: every authenticated user's discovery rules
        plain, _, group = resource.partition(".")
        granted |= {(group, plain, v, n) for v in verbs.split() for n in (names.split() or [""])}
    return granted


def test_runner_can_i_equals_what_the_kfp_runtime_and_civicml_call(civicml_ns, make_namespace, kubectl, sa_kubectl):
    # upstream: kubeflow/pipelines backend/src/v2/driver/root_dag.go:103 @ 2.17.0 (GET configmap kfp-launcher)
    # upstream: kubeflow/pipelines backend/src/v2/config/env.go:73-80 @ 2.17.0 (a 403 aborts the run)
    as_runner = sa_kubectl(civicml_ns, RUNNER)
    needed = runner_permissions(RunConfig.model_validate(ALL_FEATURES))
    refused = [_target(p) + f" ({p[2]})" for p in needed if not _can(as_runner, civicml_ns, p)]
    assert refused == [], f"the runner may not: {refused}"
    allowed_extra = [p for p in RUNNER_DENIED if _can(as_runner, civicml_ns, p)]
    assert allowed_extra == [], f"the runner may also: {allowed_extra}"
    # And nothing else: `can-i --list` shows exactly those, apart from what any account may do
    # anyway (system:basic-user's self-reviews), read from an account with no bindings at all.
    empty = make_namespace(prefix="nobody")
    kubectl("create", "serviceaccount", "nobody", "-n", empty)
    baseline = _can_i_list(sa_kubectl(empty, "nobody"), empty)
    granted = _can_i_list(as_runner, civicml_ns) - baseline
    assert sorted(granted - set(needed)) == [], "granted beyond what the code calls"
    assert sorted(set(needed) - granted) == [], "needed but not listed"


# --- item 3 / Must show: the Katib trial pod is admitted under restricted; early stopping is refused --------


def _katib_trial_pod(cfg: RunConfig, namespace: str) -> dict:
    """The trial pod as Katib's webhook produces it (injectSecurityContext: true, StdOut collector).

    upstream: kubeflow/katib pkg/webhook/v1beta1/pod/inject_webhook.go:130-200 @ v0.19.0 (Mutate)
    upstream: kubeflow/katib pkg/webhook/v1beta1/pod/inject_webhook.go:236-250 @ v0.19.0 (sidecar; copies
      containers[0].securityContext when injectSecurityContext is on)
    upstream: kubeflow/katib pkg/webhook/v1beta1/pod/utils.go:170-193,230-262,266-282 @ v0.19.0
    """
    job = kb.trial_job(cfg, "v1", {"max_depth": None, "learning_rate": None})
    template = copy.deepcopy(job["spec"]["template"])
    spec = template["spec"]
    main = spec["containers"][0]
    args = [
        a.replace("${trialParameters.max_depth}", "4").replace("${trialParameters.learning_rate}", "0.1")
        for a in main["command"] + main["args"]
    ]
    main["command"] = ["sh", "-c"]
    main["args"] = [
        " ".join([*args, "1>/var/log/katib/metrics.log 2>&1", "&&", "echo completed > /var/log/katib/$$$$.pid"])
    ]
    sidecar = {
        "name": "metrics-logger-and-collector",
        "image": "ghcr.io/kubeflow/katib/file-metrics-collector:v0.19.0",
        "args": [
            "-t",
            "exp-abcd1234",
            "-m",
            "roc_auc",
            "-o-type",
            "maximize",
            "-s-db",
            "katib-db-manager.kubeflow:6789",
            "-path",
            "/var/log/katib/metrics.log",
            "-format",
            "TEXT",
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
        "securityContext": copy.deepcopy(main["securityContext"]),
    }
    spec["containers"].append(sidecar)
    spec["shareProcessNamespace"] = True
    spec["volumes"].append({"name": "metrics-volume", "emptyDir": {}})
    for c in spec["containers"]:
        c.setdefault("volumeMounts", []).append({"name": "metrics-volume", "mountPath": "/var/log/katib"})
    labels = {
        **template["metadata"].get("labels", {}),
        "katib.kubeflow.org/experiment": "exp",
        "katib.kubeflow.org/trial": "exp-abcd1234",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "exp-abcd1234-trial",
            "namespace": namespace,
            "labels": labels,
            "annotations": template["metadata"].get("annotations", {}),
        },
        "spec": spec,
    }


def _suggestion_pod(namespace: str, early_stopping: bool) -> dict:
    """The suggestion pod Katib's composer builds, with katib-config's container securityContext.

    upstream: kubeflow/katib pkg/controller.v1beta1/suggestion/composer/composer.go:186-260 @ v0.19.0
    """
    restricted = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    containers = [
        {
            "name": "suggestion",
            "image": "ghcr.io/kubeflow/katib/suggestion-optuna:v0.19.0",
            "ports": [{"name": "katib-api", "containerPort": 6789}],
            "securityContext": restricted,
        }
    ]
    if early_stopping:
        containers.append(
            {
                "name": "early-stopping",
                "image": "ghcr.io/kubeflow/katib/earlystopping-medianstop:v0.19.0",
                "ports": [{"name": "katib-earlystop", "containerPort": 6788}],
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"exp-tpe-{int(early_stopping)}",
            "namespace": namespace,
            "labels": {"katib.kubeflow.org/suggestion": "exp", "katib.kubeflow.org/experiment": "exp"},
        },
        "spec": {"containers": containers},
    }


def test_katib_trial_pod_is_admitted_and_early_stopping_pod_refused_under_restricted(
    civicml_ns, kubectl, admin_kubeconfig, monkeypatch
):
    cfg = RunConfig.model_validate({"storage": {"uri": "s3://civicml/registry"}, "deploy": {"image": "civicml:1"}})
    trial = _katib_trial_pod(cfg, civicml_ns)
    kubectl("create", "-f", "-", input=json.dumps(trial))
    assert kubectl.json("get", "pod", trial["metadata"]["name"], "-n", civicml_ns)["metadata"]["name"]
    kubectl("create", "-f", "-", input=json.dumps(_suggestion_pod(civicml_ns, early_stopping=False)))
    refused = kubectl(
        "create", "-f", "-", input=json.dumps(_suggestion_pod(civicml_ns, early_stopping=True)), check=False
    )
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr and "early-stopping" in refused.stderr, refused.stderr

    # civicml refuses first, reading the real namespace's label, before it sends any Experiment.
    from kubernetes import client, config

    monkeypatch.setenv("CIVICML_STORE_URI", "s3://civicml/registry")
    early = RunConfig.model_validate(
        {
            "storage": {"uri": "s3://civicml/registry"},
            "tuning": {
                "backend": "katib",
                "early_stopping": {"min_trials_required": 2, "start_step": 3},
                "katib": {"namespace": civicml_ns},
            },
        }
    )
    api = config.new_client_from_config(config_file=str(admin_kubeconfig))

    class NoExperimentCalls:
        def __getattr__(self, name):
            raise AssertionError(f"an Experiment call was made: {name}")

    with pytest.raises(kb.KatibError, match="restricted.*remove tuning.early_stopping.*baseline"):
        kb.run_katib(early, "v1", api=NoExperimentCalls(), core=client.CoreV1Api(api))


# --- item 5 / Must show: `kubectl rollout undo` serves the previous version ------------------------------------


def _wait_rolled_out(kubectl, ns: str, name: str):
    kubectl("rollout", "status", f"deploy/{name}", "-n", ns, "--timeout=120s")


def _served(kubectl, ns: str) -> set[str]:
    """The champion each running, ready server pod serves (its own annotation, read through the downward API)."""
    deadline = time.monotonic() + 60
    while True:
        pods = kubectl.json("get", "pods", "-n", ns, "-l", "app.kubernetes.io/name=civicml-model-server")["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        served = {json.loads(p["metadata"]["annotations"][ROUTING_ANNOTATION])["champion"] for p in live}
        if len(served) == 1 or time.monotonic() > deadline:
            return served
        time.sleep(1)


@pytest.fixture
def deployer(civicml_ns, sa_kubeconfig, tmp_path):
    """Deploys as the runner ServiceAccount (what the pipeline's deploy step is)."""
    from kubernetes import config

    cfg = RunConfig.model_validate(
        {
            "storage": {"uri": "s3://civicml/registry"},
            "deploy": {
                "target": "kubernetes",
                "namespace": civicml_ns,
                "image": "civicml:1",
                "replicas": 2,
                "rollout_timeout_seconds": 120,
                "poll_seconds": 1,
            },
        }
    )
    reg = Registry(LocalStore(tmp_path / "store"))
    for v in ("v1", "v2"):
        commit_version(reg, v, {}, {"status": "approved"})
    api = config.new_client_from_config(config_file=str(sa_kubeconfig(civicml_ns, RUNNER)))
    return cfg, reg, KubeClient(api)


def test_rollout_undo_serves_the_previous_version(civicml_ns, kubectl, deployer):
    cfg, reg, client = deployer
    deploy_version(cfg, reg, "v1", client=client)
    deploy_version(cfg, reg, "v2", client=client)
    assert reg.get_alias(CHAMPION) == "v2" and _served(kubectl, civicml_ns) == {"v2"}
    kubectl("rollout", "undo", "deploy/civicml-model-server", "-n", civicml_ns)
    _wait_rolled_out(kubectl, civicml_ns, "civicml-model-server")
    assert _served(kubectl, civicml_ns) == {"v1"}
    dep = kubectl.json("get", "deploy", "civicml-model-server", "-n", civicml_ns)
    assert pinned_documents(dep)[0].champion == "v1"


# --- item 11: both applies in sequence -------------------------------------------------------------------------


def test_kustomize_and_civicml_deploy_in_sequence_leave_one_owner(civicml_ns, kubectl, deployer):
    cfg, reg, client = deployer
    deploy_version(cfg, reg, "v1", client=client)
    before = kubectl.json("get", "deploy", "civicml-model-server", "-n", civicml_ns)
    _apply(kubectl, _base_objects(kubectl, civicml_ns))  # the admin re-applies the manifests
    after = kubectl.json("get", "deploy", "civicml-model-server", "-n", civicml_ns, "--show-managed-fields")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]
    writers = {m["manager"] for m in after["metadata"]["managedFields"] if m.get("subresource") != "status"}
    assert writers == {FIELD_MANAGER}
    # What runs is what civicml built, not a merge with a kustomize copy (the API server adds defaults).
    built = next(o for o in build_objects(cfg, Routing(champion="v1")) if o["kind"] == "Deployment")
    assert pinned_documents(after)[0].champion == "v1"
    for ours, stored in zip(
        built["spec"]["template"]["spec"]["containers"], after["spec"]["template"]["spec"]["containers"]
    ):
        assert {k: stored[k] for k in ("name", "image", "args", "resources")} == {
            k: ours[k] for k in ("name", "image", "args", "resources")
        }


# --- item 16: doctor against namespaces each missing one piece --------------------------------------------------


def _doctor(ns: str, admin_kubeconfig) -> dict[str, bool]:
    from kubernetes import config

    from civicml.orchestration.doctor import Doctor

    api = config.new_client_from_config(config_file=str(admin_kubeconfig))
    cfg = RunConfig.model_validate({"deploy": {"namespace": ns}, "tuning": {"katib": {"namespace": ns}}})
    return {c.name: c.ok for c in Doctor(cfg, ns, api).run()}


def _secrets(kubectl, ns: str):
    for name in ("civicml-object-store", "civicml-model-server-store"):
        kubectl(
            "create",
            "secret",
            "generic",
            name,
            "-n",
            ns,
            "--from-literal=MINIO_ACCESS_KEY=a",
            "--from-literal=MINIO_SECRET_KEY=b",
        )


def test_doctor_on_a_complete_namespace(civicml_ns, kubectl, admin_kubeconfig):
    _secrets(kubectl, civicml_ns)
    result = _doctor(civicml_ns, admin_kubeconfig)
    for name in (
        "API server",
        "pod security",
        "katib injection",
        f"can-i {RUNNER}",
        f"least privilege {RUNNER}",
        "secret civicml-object-store",
        "secret civicml-model-server-store",
        "configmap kfp-launcher",
        f"serviceaccount {RUNNER}",
        "early stopping",
    ):
        assert result[name], name
    assert result["Katib CRDs"] is False  # no Katib in the test cluster: reported, with the fix


@pytest.mark.parametrize("missing", ["secret", "label", "rolebinding", "configmap", "serviceaccount"])
def test_doctor_names_the_one_missing_piece(civicml_ns, kubectl, admin_kubeconfig, missing):
    _secrets(kubectl, civicml_ns)
    action, check = {
        "secret": (["delete", "secret", "civicml-model-server-store"], "secret civicml-model-server-store"),
        "label": (["label", "ns", civicml_ns, "katib.kubeflow.org/metrics-collector-injection-"], "katib injection"),
        "rolebinding": (["delete", "rolebinding", "civicml-kfp-runtime"], f"can-i {RUNNER}"),
        "configmap": (["delete", "configmap", "kfp-launcher"], "configmap kfp-launcher"),
        "serviceaccount": (["delete", "serviceaccount", "civicml-model-server"], "serviceaccount civicml-model-server"),
    }[missing]
    kubectl(*action, *([] if action[1] == "ns" else ["-n", civicml_ns]))
    result = _doctor(civicml_ns, admin_kubeconfig)
    assert result[check] is False
    failed = {k for k, ok in result.items() if not ok} - {
        "Katib CRDs",
        "KFP CRDs",
        "KFP restricted pods",
        "object store",
    }
    assert failed == {check}


def test_doctor_cli_exit_code(civicml_ns, admin_kubeconfig):
    res = subprocess.run(
        [sys.executable, "-m", "civicml.cli", "doctor", "--namespace", civicml_ns],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(admin_kubeconfig)},
        timeout=120,
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert any(line.startswith("✗ Katib CRDs") for line in res.stdout.splitlines()), res.stdout


# --- item 15: a 403 for a cluster command is one line, no traceback ------------------------------------------


def test_a_403_for_a_cluster_command_is_one_line(civicml_ns, sa_kubeconfig, s3_env, tmp_path):
    """`civicml rollback` (deploy.target kubernetes, the store on the real MinIO) as an account the
    API server refuses: one line naming the refusal, exit non-zero, no traceback, no alias moved."""
    reg = Registry(open_store())
    for v in ("v1", "v2"):
        commit_version(reg, v, {}, {"status": "approved"})
        promote(reg, v, by="test", reason="setup")
    cfg = tmp_path / "civicml.yaml"
    cfg.write_text(yaml.safe_dump({"deploy": {"target": "kubernetes", "namespace": civicml_ns, "image": "civicml:1"}}))
    # civicml-model-server holds no rights at all (and its token is not mounted in its pods).
    env = {**os.environ, "KUBECONFIG": str(sa_kubeconfig(civicml_ns, "civicml-model-server")), "CIVICML_ACTOR": "t"}
    res = subprocess.run(
        [sys.executable, "-m", "civicml.cli", "rollback", "--config", str(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    out = res.stderr + res.stdout
    assert res.returncode != 0, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    # The API server's own reason names who was refused what; nothing was applied, so nothing is
    # "rolled back" (a second refusal would only bury the first).
    assert "HTTP 403" in lines[0] and "nothing was applied" in lines[0], lines
    assert f'User "system:serviceaccount:{civicml_ns}:civicml-model-server" cannot patch resource' in lines[0], lines
    assert reg.get_alias(CHAMPION) == "v2"
