"""The TrainJob civicml submits for `training.backend: trainjob`, its RBAC, and the submit/wait edge.

Upstream pins (kubeflow/trainer @ v2.3.0):
- TrainJob API: pkg/apis/trainer/v1alpha1/trainjob_types.go:102-153 (runtimeRef, trainer, runtimePatches),
  conditions "Complete"/"Failed" at trainjob_types.go:61,64.
- xgboost-distributed runtime: manifests/base/runtimes/xgboost_distributed.yaml:15-38 (ClusterTrainingRuntime,
  replicated job and container both named "node").
- XGBoost plugin: pkg/runtime/framework/plugins/xgboost/xgboost.go:59-69 forbids the DMLC_* names in
  spec.trainer.env; xgboost.go:119-139 injects them; constants.go:269-278 names them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob
from kubernetes.client.exceptions import ApiException

from civicml.config import ConfigError, load_config
from civicml.deploy import trainjob as tj
from civicml.deploy.security import restricted_violations
from civicml.modeling.distributed import REPORT_PREFIX

ROOT = Path(__file__).resolve().parents[2]
VERSION = "v20261201-120000-abc123"


@pytest.fixture
def cfg():
    return load_config(None, {"training.workers": 4, "training.backend": "trainjob", "storage.uri": "s3://b/p"})


@pytest.fixture
def body(cfg):
    return tj.trainjob_body(tj.build_trainjob(cfg, VERSION))


def test_body_round_trips_through_the_trainer_api_models(body):
    # from_dict keeps only fields the models know: anything misspelt or misplaced would be lost here.
    assert TrainerV1alpha1TrainJob.from_dict(copy.deepcopy(body)).to_dict() == body
    assert body["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and body["kind"] == "TrainJob"


def test_trainjob_runs_n_nodes_of_the_worker_on_the_xgboost_runtime(cfg, body):
    spec = body["spec"]
    assert spec["runtimeRef"] == {
        "name": "xgboost-distributed",
        "kind": "ClusterTrainingRuntime",
        "apiGroup": "trainer.kubeflow.org",
    }
    assert spec["trainer"]["numNodes"] == 4
    assert spec["trainer"]["command"] == [
        "python",
        "-m",
        "civicml.modeling.distributed",
        "--job-key",
        tj.job_key(VERSION),
    ]
    assert spec["trainer"]["image"] == cfg.deploy.image
    assert spec["activeDeadlineSeconds"] == cfg.training.timeout_seconds
    limits = spec["trainer"]["resourcesPerNode"]["limits"]
    assert limits == {"cpu": cfg.training.cpu, "memory": cfg.training.memory}


def test_no_reserved_dmlc_variable_and_no_literal_secret(body):
    env = {e["name"]: e for e in body["spec"]["trainer"]["env"]}
    # upstream: kubeflow/trainer pkg/runtime/framework/plugins/xgboost/xgboost.go:59-69 @ v2.3.0
    assert not set(env) & tj.RESERVED_ENV
    assert tj.RESERVED_ENV == {"DMLC_TRACKER_URI", "DMLC_TRACKER_PORT", "DMLC_TASK_ID", "DMLC_NUM_WORKER"}
    for key in ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
        assert "value" not in env[key] and env[key]["valueFrom"]["secretKeyRef"]["key"] == key
    assert env["CIVICML_STORE_URI"]["value"] == "s3://b/p"


def test_node_pods_meet_pod_security_restricted(body):
    # The patch targets the runtime's replicated job "node" and its container "node"
    # (upstream: manifests/base/runtimes/xgboost_distributed.yaml:28,37 @ v2.3.0).
    (patch,) = body["spec"]["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == tj.NODE == "node"
    pod = job["template"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "node"
    # What the pod looks like once the Trainer merges the patch into the runtime's container.
    merged = {**pod, "containers": [{**container, "image": body["spec"]["trainer"]["image"]}]}
    assert restricted_violations(merged) == []


def test_names_are_dns_labels_short_enough_for_the_tracker_host():
    long = "v20261201-120000-" + "x" * 80
    name = tj.trainjob_name(long)
    # The tracker host is <name>-node-0-0.<name> (xgboost.go:116-117 @ v2.3.0); each label <= 63.
    assert len(f"{name}-node-0-0") <= 63 and name[0].isalpha() and name == name.lower()


def test_workers_need_xgboost():
    with pytest.raises(ConfigError, match=r"training.workers=2 needs model.family 'xgboost'"):
        load_config(None, {"training.workers": 2, "model.family": "random_forest", "model.params": {}})
    assert load_config(None, {}).training.workers == 1


def test_role_file_grants_exactly_the_declared_permissions():
    docs = [d for d in yaml.safe_load_all((ROOT / "manifests/base/trainer-role.yaml").read_text()) if d]
    (role,) = docs
    assert role["kind"] == "Role" and role["metadata"]["name"] == "civicml-trainer"
    granted = {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }
    declared = {(g, r, v) for g, r, verbs in tj.K8S_PERMISSIONS for v in verbs}
    assert granted == declared
    (binding,) = yaml.safe_load_all((ROOT / "manifests/base/trainer-rolebinding.yaml").read_text())
    assert binding["roleRef"]["name"] == "civicml-trainer"
    assert binding["subjects"][0]["name"] == "civicml-pipeline-runner"
    kustomization = yaml.safe_load((ROOT / "manifests/base/kustomization.yaml").read_text())
    assert {"trainer-role.yaml", "trainer-rolebinding.yaml"} <= set(kustomization["resources"])


# --- submit and wait against a stand-in API (the real one is checked in tests/cluster) ------------------


class FakeCustom:
    def __init__(self, states, create_error=None):
        self.states, self.create_error = list(states), create_error
        self.created, self.deleted = None, False

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        assert (group, version, plural) == (tj.GROUP, tj.VERSION, tj.PLURAL)
        if self.create_error:
            raise self.create_error
        self.created = body

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        obj = copy.deepcopy(self.created)
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if state:
            obj["status"] = {
                "conditions": [{"type": state[0], "status": "True", "reason": state[1], "message": state[2]}]
            }
        return obj

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.deleted = True


class FakeCore:
    def __init__(self, logs):
        self.logs, self.selectors = logs, []

    def list_namespaced_pod(self, namespace, label_selector):
        self.selectors.append(label_selector)
        return SimpleNamespace(items=[SimpleNamespace(metadata=SimpleNamespace(name=n)) for n in self.logs])

    def read_namespaced_pod_log(self, name, namespace, container, tail_lines):
        assert container == "node"
        return "\n".join(self.logs[name].splitlines()[-tail_lines:])


def _wait(api, core, body, **kw):
    return tj.submit_and_wait(
        api, core, body, timeout_seconds=kw.pop("timeout", 60), poll_seconds=1, sleep=lambda s: None, **kw
    )


def test_failed_trainjob_is_reported_with_its_pods_last_log_lines(body):
    name = body["metadata"]["name"]
    logs = {
        f"{name}-node-0-0-x": "start\ntraining\n",
        f"{name}-node-0-1-y": "a\n" * 30 + "MemoryError: out of memory\n",
    }
    api, core = FakeCustom([None, ("Failed", "BackoffLimitExceeded", "jobset failed")]), FakeCore(logs)
    with pytest.raises(tj.TrainJobError) as err:
        _wait(api, core, body)
    text = str(err.value)
    assert f"TrainJob civicml/{name} failed: BackoffLimitExceeded: jobset failed" in text
    assert f"last lines of pod {name}-node-0-1-y:" in text and "MemoryError: out of memory" in text
    assert text.count("    | a") == tj.LOG_LINES - 1  # only the tail
    assert core.selectors == [f"jobset.sigs.k8s.io/jobset-name={name}"]
    assert not api.deleted  # kept for `kubectl describe`


def test_completed_trainjob_returns_the_worker_reports_and_is_deleted(body):
    name = body["metadata"]["name"]
    logs = {f"{name}-node-0-{r}": f"x\n{REPORT_PREFIX}{json.dumps({'rank': r, 'rows': 10})}\n" for r in (1, 0)}
    api = FakeCustom([None, None, ("Complete", "JobsCompleted", "")])
    out = _wait(api, FakeCore(logs), body)
    assert [r["rank"] for r in out["reports"]] == [0, 1] and api.deleted


def test_refused_and_timed_out_trainjobs_say_what_to_do(body):
    with pytest.raises(tj.TrainJobError, match=r"lacks RBAC .* \(apply manifests/base/trainer-role.yaml\)"):
        _wait(FakeCustom([None], create_error=ApiException(status=403, reason="Forbidden")), FakeCore({}), body)
    with pytest.raises(tj.TrainJobError, match="is Kubeflow Trainer installed"):
        _wait(FakeCustom([None], create_error=ApiException(status=404, reason="NotFound")), FakeCore({}), body)
    ticks = iter(range(0, 10_000, 30))
    with pytest.raises(tj.TrainJobError, match=r"did not finish within 60s \(training.timeout_seconds\)"):
        _wait(FakeCustom([None]), FakeCore({}), body, clock=lambda: next(ticks))


def test_trainjob_backend_refuses_a_local_store(tmp_path):
    from civicml.modeling.distributed import WorkerJob

    cfg = load_config(None, {"training.workers": 2, "training.backend": "trainjob", "storage.uri": str(tmp_path)})
    job = WorkerJob(spec={}, params={}, seed=1, n_threads=1, shards=[], output="")
    with pytest.raises(tj.TrainJobError, match="needs an object store the worker pods can reach"):
        tj.stage_job(cfg, VERSION, job)
