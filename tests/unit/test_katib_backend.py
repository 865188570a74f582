"""Katib backend: the Experiment validates against Katib's models and Kubernetes' schemas, and
the submit/wait wrapper handles success, failure and timeout against a stand-in CustomObjectsApi."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import ClassVar

import kubernetes_validate
import pytest
import yaml
from kubeflow_katib_api.models import V1beta1Experiment
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from civicml.config import ConfigError, load_config
from civicml.deploy.security import restricted_violations
from civicml.tuning import katib_backend as kb

REPO = Path(__file__).resolve().parents[2]
VERSION = "v20260101-120000-abc123"
S3 = "s3://civicml/registry"


@pytest.fixture
def cfg(monkeypatch):
    monkeypatch.setenv("CIVICML_STORE_URI", S3)
    return load_config(REPO / "civicml.yaml", {"tuning.backend": "katib"})


@pytest.fixture
def body(cfg):
    return kb.experiment_body(kb.build_experiment(cfg, VERSION))


def test_experiment_for_demo_config_round_trips_through_katib_models(cfg, body):
    exp = kb.build_experiment(cfg, VERSION)
    assert isinstance(exp, V1beta1Experiment)
    # What the API client would send, deserialised back into Katib's model, is unchanged:
    # no field was dropped as unknown and every value has the model's type.
    sent = ApiClient().sanitize_for_serialization(exp.to_dict())
    again = V1beta1Experiment.from_dict(sent)
    assert again.to_dict() == sent == body
    spec = again.spec
    assert spec.algorithm.algorithm_name == "tpe"
    assert {s.name: s.value for s in spec.algorithm.algorithm_settings} == {"random_state": "42"}
    assert spec.objective.objective_metric_name == "roc_auc" and spec.objective.type == "maximize"
    assert spec.max_trial_count == 8 and spec.parallel_trial_count == 2 and spec.max_failed_trial_count == 3
    # The example runs under "restricted": no early-stopping container in the suggestion pod.
    assert spec.early_stopping is None
    assert spec.metrics_collector_spec.collector.kind == "StdOut"
    params = {p.name: p for p in spec.parameters}
    assert params["learning_rate"].parameter_type == "double"
    assert params["learning_rate"].feasible_space.distribution == "logUniform"
    assert (params["learning_rate"].feasible_space.min, params["learning_rate"].feasible_space.max) == ("0.02", "0.3")
    assert params["max_depth"].parameter_type == "int" and params["max_depth"].feasible_space.min == "2"
    template = spec.trial_template
    assert template.primary_container_name == "trial"
    assert [(p.name, p.reference) for p in template.trial_parameters] == [(n, n) for n in params]
    assert body["metadata"] == {
        "name": "benefits-review-v20260101-120000-abc123",
        "namespace": "civicml",
        "labels": {"app.kubernetes.io/part-of": "civicml", "civicml.io/version": VERSION},
        "annotations": {"civicml.io/spec-sha256": body["metadata"]["annotations"]["civicml.io/spec-sha256"]},
    }


def test_early_stopping_settings_reach_the_experiment(monkeypatch):
    monkeypatch.setenv("CIVICML_STORE_URI", S3)
    cfg = load_config(
        REPO / "civicml.yaml",
        {"tuning.backend": "katib", "tuning.early_stopping": {"min_trials_required": 3, "start_step": 10}},
    )
    spec = kb.build_experiment(cfg, VERSION).spec
    assert spec.early_stopping.algorithm_name == "medianstop"
    assert {s.name: s.value for s in spec.early_stopping.algorithm_settings} == {
        "min_trials_required": "3",
        "start_step": "10",
    }


def test_round_trip_would_catch_a_misspelled_field(body):
    broken = copy.deepcopy(body)
    broken["spec"]["maxTrialsCount"] = broken["spec"].pop("maxTrialCount")
    assert V1beta1Experiment.from_dict(broken).to_dict() != broken


def test_trial_job_is_a_valid_restricted_batch_job(cfg, body):
    job = body["spec"]["trialTemplate"]["trialSpec"]
    for version in ("1.30.0", "1.33.0"):
        kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["serviceAccountName"] == "civicml-pipeline-runner"
    (container,) = pod["containers"]
    assert container["name"] == "trial" and container["image"] == cfg.deploy.image
    assert container["command"] == ["civicml"]
    assert container["args"][:3] == ["trial", "--version", VERSION]
    assert "learning_rate=${trialParameters.learning_rate}" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CIVICML_STORE_URI"]["value"] == S3
    for key in ("MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "civicml-object-store", "key": key}
        assert "value" not in env[key]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }


def test_trial_job_strict_validation_rejects_a_typo(body):
    job = copy.deepcopy(body["spec"]["trialTemplate"]["trialSpec"])
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicie"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.30.0", strict=True)


def test_categorical_and_stepped_parameters(cfg):
    cfg = load_config(
        REPO / "civicml.yaml",
        {
            "tuning.backend": "katib",
            "tuning.algorithm": "grid",
            "tuning.max_trials": 6,
            "tuning.search_space": {
                "max_depth": {"type": "int", "min": 2, "max": 4},
                "grow_policy": {"type": "categorical", "values": ["depthwise", "lossguide"]},
            },
        },
    )
    body = kb.experiment_body(kb.build_experiment(cfg, VERSION))
    params = {p["name"]: p for p in body["spec"]["parameters"]}
    assert params["grow_policy"] == {
        "name": "grow_policy",
        "parameterType": "categorical",
        "feasibleSpace": {"list": ["depthwise", "lossguide"]},
    }
    assert params["max_depth"]["feasibleSpace"] == {"min": "2", "max": "4"}
    assert V1beta1Experiment.from_dict(body).to_dict() == body


def test_long_names_are_shortened_to_a_stable_dns_name(cfg):
    cfg = cfg.model_copy(update={"name": "A Very Long Project Name For The Benefits Office"})
    name = kb.experiment_name(cfg, VERSION)
    assert len(name) <= 40 and name == kb.experiment_name(cfg, VERSION)
    assert all(c.isalnum() and c.islower() or c.isdigit() or c == "-" for c in name)


def test_dry_run_yaml_is_the_body(cfg, body):
    assert yaml.safe_load(kb.experiment_yaml(cfg, VERSION)) == body


# --- the submit/wait wrapper against a stand-in CustomObjectsApi -------------------------------------


def finished(body: dict, condition: str, reason: str = "", message: str = "") -> dict:
    obj = copy.deepcopy(body)
    obj["status"] = {
        "conditions": [
            {"type": "Created", "status": "True", "reason": "ExperimentCreated"},
            {"type": "Running", "status": "False"},
            {"type": condition, "status": "True", "reason": reason, "message": message},
        ],
        "trialsSucceeded": 2,
        "trialsFailed": 1 if condition == "Failed" else 0,
        "failedTrialList": ["t-3"] if condition == "Failed" else None,
        "currentOptimalTrial": {
            "bestTrialName": f"{body['metadata']['name']}-abcd1234",
            "parameterAssignments": [
                {"name": "learning_rate", "value": "0.05"},
                {"name": "max_depth", "value": "4"},
                {"name": "min_child_weight", "value": "1.5"},
                {"name": "subsample", "value": "0.8"},
            ],
            "observation": {
                "metrics": [
                    {"name": "roc_auc", "latest": "0.81", "max": "0.82", "min": "0.6"},
                    {"name": "accuracy", "latest": "0.74", "max": "0.74", "min": "0.74"},
                ]
            },
        },
    }
    return obj


def trial_obj(exp: str, suffix: str, state: str, auc: str | None, created: str, depth: str) -> dict:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {
            "name": f"{exp}-{suffix}",
            "namespace": "civicml",
            "creationTimestamp": created,
            "labels": {"katib.kubeflow.org/experiment": exp},
        },
        "spec": {
            "parameterAssignments": [
                {"name": "learning_rate", "value": "0.05"},
                {"name": "max_depth", "value": depth},
                {"name": "min_child_weight", "value": "1.5"},
                {"name": "subsample", "value": "0.8"},
            ]
        },
        "status": {
            "conditions": [{"type": "Created", "status": "True"}, {"type": state, "status": "True"}],
            **({"observation": {"metrics": [{"name": "roc_auc", "latest": auc}]}} if auc else {}),
        },
    }


class FakeCustomObjectsApi:
    """Records calls like kubernetes.client.CustomObjectsApi; `states` is what successive gets return."""

    VERBS: ClassVar[dict[str, str]] = {
        "create_namespaced_custom_object": "create",
        "get_namespaced_custom_object": "get",
        "delete_namespaced_custom_object": "delete",
        "list_namespaced_custom_object": "list",
    }

    def __init__(
        self,
        states: list[dict | None],
        trials: list[dict] | None = None,
        create_error: int | None = None,
        existing: dict | None = None,
    ):
        self.states = states
        self.trials = trials or []
        self.create_error = create_error
        self.calls: list[tuple[str, str, str, str, str]] = []
        self.created: dict | None = copy.deepcopy(existing)

    def _record(self, method, group, version, namespace, plural):
        self.calls.append((self.VERBS[method], group, version, namespace, plural))

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self._record("create_namespaced_custom_object", group, version, namespace, plural)
        if self.create_error:
            raise ApiException(status=self.create_error, reason="Conflict")
        self.created = copy.deepcopy(body)
        return body

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self._record("get_namespaced_custom_object", group, version, namespace, plural)
        assert name == self.created["metadata"]["name"]
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return state if state is not None else copy.deepcopy(self.created)

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name):
        self._record("delete_namespaced_custom_object", group, version, namespace, plural)
        return {}

    def list_namespaced_custom_object(self, group, version, namespace, plural, label_selector=None):
        self._record("list_namespaced_custom_object", group, version, namespace, plural)
        name = self.created["metadata"]["name"]
        assert label_selector == f"katib.kubeflow.org/experiment={name}"
        return {"items": self.trials}


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_success_returns_optuna_shaped_result_and_deletes(cfg, body):
    name = body["metadata"]["name"]
    trials = [
        trial_obj(name, "bbbb", "Failed", None, "2026-01-01T12:02:00Z", "3"),
        trial_obj(name, "aaaa", "Succeeded", "0.81", "2026-01-01T12:01:00Z", "4"),
    ]
    api = FakeCustomObjectsApi([None, None, finished(body, "Succeeded", "ExperimentMaxTrialsReached")], trials)
    clock = FakeClock()
    obj, listed = kb.submit_and_wait(api, body, timeout_seconds=600, poll_seconds=5, clock=clock, sleep=clock.sleep)
    result = kb.result_from_experiment(cfg, obj, listed)
    # The stand-in received exactly the validated builder output.
    assert api.created == body
    assert V1beta1Experiment.from_dict(api.created).to_dict() == api.created
    assert clock.sleeps == [5, 5]
    assert [c[0] for c in api.calls] == ["create", "get", "get", "get", "list", "delete"]
    assert result["backend"] == "katib" and result["algorithm"] == "tpe" and result["objective_metric"] == "roc_auc"
    assert result["best_params"] == {"learning_rate": 0.05, "max_depth": 4, "min_child_weight": 1.5, "subsample": 0.8}
    assert result["best_value"] == 0.81
    assert [(t["number"], t["state"], t["value"], t["max_depth"]) for t in result["trials"]] == [
        (0, "SUCCEEDED", 0.81, 4),
        (1, "FAILED", None, 3),
    ]
    # Same keys the Optuna backend returns, so `train` and the reports take either.
    assert {"backend", "algorithm", "objective_metric", "best_params", "best_value", "trials"} <= set(result)


def test_every_api_call_is_declared_in_k8s_permissions(body):
    api = FakeCustomObjectsApi([finished(body, "Succeeded")])
    clock = FakeClock()
    kb.submit_and_wait(api, body, timeout_seconds=60, clock=clock, sleep=clock.sleep)
    used: dict[tuple[str, str], set[str]] = {}
    for verb, group, version, namespace, plural in api.calls:
        assert (group, version, namespace) == ("kubeflow.org", "v1beta1", "civicml")
        used.setdefault((group, plural), set()).add(verb)
    declared = {(g, r): set(v) for g, r, v in kb.K8S_PERMISSIONS}
    assert used == declared


def test_failed_condition_raises_with_reason_and_deletes(body):
    api = FakeCustomObjectsApi(
        [
            None,
            finished(
                body,
                "Failed",
                "ExperimentMaxFailedTrialsReached",
                "Experiment has reached the maximum number of failed trials",
            ),
        ]
    )
    clock = FakeClock()
    with pytest.raises(kb.KatibError) as info:
        kb.submit_and_wait(api, body, timeout_seconds=600, clock=clock, sleep=clock.sleep)
    message = str(info.value)
    assert "failed: ExperimentMaxFailedTrialsReached" in message and "t-3" in message
    assert api.calls[-1][0] == "delete"


def test_timeout_raises_and_retain_keeps_the_experiment(body):
    api = FakeCustomObjectsApi([None])  # forever running
    clock = FakeClock()
    with pytest.raises(kb.KatibError, match=r"did not finish within 60s \(tuning.katib.timeout_seconds\)"):
        kb.submit_and_wait(api, body, timeout_seconds=60, retain=True, poll_seconds=15, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [15, 15, 15, 15]
    assert "delete" not in [c[0] for c in api.calls]


def test_create_conflict_with_another_runs_experiment_is_a_clear_error(body):
    other = copy.deepcopy(body)
    other["metadata"]["labels"]["civicml.io/version"] = "v20250101-000000-other"
    api = FakeCustomObjectsApi([None], create_error=409, existing=other)
    with pytest.raises(kb.KatibError, match="HTTP 409.*another civicml version.*kubectl -n civicml delete experiment"):
        kb.submit_and_wait(api, body, timeout_seconds=60, clock=FakeClock(), sleep=lambda s: None)
    assert [c[0] for c in api.calls] == ["create", "get"]


def test_create_conflict_with_a_changed_search_is_refused(body, cfg):
    cfg.tuning.max_trials = 5
    changed = kb.experiment_body(kb.build_experiment(cfg, VERSION))
    assert changed["metadata"]["name"] == body["metadata"]["name"]
    api = FakeCustomObjectsApi([None], create_error=409, existing=changed)
    with pytest.raises(kb.KatibError, match="same version with a different search"):
        kb.submit_and_wait(api, body, timeout_seconds=60, clock=FakeClock(), sleep=lambda s: None)


def test_retried_tune_pod_resumes_its_own_experiment_on_409(cfg, body):
    # A retried pod re-sends the same body: 409 AlreadyExists; it reads the Experiment, sees its own
    # version label and spec hash, and resumes polling instead of failing.
    running = copy.deepcopy(body)
    api = FakeCustomObjectsApi([running, finished(body, "Succeeded")], create_error=409, existing=body)
    clock = FakeClock()
    obj, _ = kb.submit_and_wait(api, body, timeout_seconds=600, poll_seconds=5, clock=clock, sleep=clock.sleep)
    assert kb.result_from_experiment(cfg, obj, [])["best_value"] == 0.81
    assert [c[0] for c in api.calls] == ["create", "get", "get", "list", "delete"]


def test_success_without_optimal_trial_is_an_error(cfg, body):
    obj = finished(body, "Succeeded")
    del obj["status"]["currentOptimalTrial"]
    with pytest.raises(kb.KatibError, match="without a successful trial"):
        kb.result_from_experiment(cfg, obj, [])


def test_local_store_is_refused_before_anything_is_sent(cfg, monkeypatch):
    monkeypatch.setenv("CIVICML_STORE_URI", "/tmp/somewhere")
    api = FakeCustomObjectsApi([None])
    with pytest.raises(kb.KatibError, match="needs an object store the trial pods can reach"):
        kb.run_katib(cfg, VERSION, api=api)
    assert api.calls == []


def test_invalid_space_fails_before_building(cfg):
    bad = load_config(
        REPO / "civicml.yaml",
        {
            "model.family": "logistic_regression",
            "model.params": {},
            "tuning.search_space": {},
            "tuning.algorithm": "cmaes",
        },
    )
    with pytest.raises(ConfigError, match="cmaes"):
        kb.build_experiment(bad, VERSION)
