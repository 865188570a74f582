"""KFP run / recurring-run requests built and validated as data; the CLI's dry runs; the thin client calls."""

import json
import os
from typing import ClassVar

import kfp_server_api
import pytest
import yaml
from typer.testing import CliRunner

from civicml.config import RunConfig
from civicml.orchestration import kfp_client
from civicml.orchestration.kfp_client import (
    CronError,
    SubmitError,
    build_recurring_run_request,
    build_run_request,
    parse_cron,
    pipeline_spec_from_yaml,
    validate_request,
)

SENTINEL = "s3cr3t-SENTINEL-never-print-me"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from pipelines.monitoring_pipeline import compile_monitoring_pipeline
    from pipelines.training_pipeline import compile_training_pipeline

    d = tmp_path_factory.mktemp("compiled")
    cfg = RunConfig()
    return {
        "training": compile_training_pipeline(
            d / "training_pipeline.yaml", "img:1", cfg.to_json(), cfg.storage.secret_name
        ),
        "monitoring": compile_monitoring_pipeline(
            d / "monitoring_pipeline.yaml", "img:1", cfg.to_json(), cfg.storage.secret_name
        ),
    }


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("0 0 2 * * *", "0 0 2 * * *"),
        ("0 30 6 * * MON-FRI", "0 30 6 * * MON-FRI"),
        ("0 */15 8-18 ? * 1-5", "0 */15 8-18 ? * 1-5"),
        ("0   0 1 1,15 * *", "0 0 1 1,15 * *"),
        ("@daily", "@daily"),
        ("@every 6h30m", "@every 6h30m"),
    ],
)
def test_valid_cron(expr, expected):
    c = parse_cron(expr)
    assert c.expression == expected and c.note == ""


def test_five_field_cron_is_converted_and_explained():
    c = parse_cron("30 2 * * 1")
    assert c.expression == "0 30 2 * * 1"
    assert "5-field" in c.note and "seconds" in c.note


@pytest.mark.parametrize(
    "expr,message",
    [
        ("", "empty cron"),
        ("* * *", "has 3 field(s); KFP expects 6"),
        ("0 0 25 * * *", "hours value 25 is outside 0-23"),
        ("0 0 2 * * 7", "Sunday is 0"),
        ("0 0 2 ? * ?", None),
        ("0 ? 2 * * *", "'?' is only allowed"),
        ("0 0 2 * * xyz", "not a number or one of SUN"),
        ("0 0 5-2 * * *", "runs backwards"),
        ("0 */0 * * * *", "step '0'"),
        ("@sometimes", "unknown cron descriptor"),
    ],
)
def test_bad_cron_is_rejected_with_a_clear_message(expr, message):
    if message is None:
        parse_cron(expr)  # '?' in both day fields is accepted by robfig/cron
        return
    with pytest.raises(
        CronError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?").replace("*", r"\*")
    ):
        parse_cron(expr)


def test_recurring_run_request(compiled):
    cfg = RunConfig()
    body, cron = build_recurring_run_request(cfg, "training", compiled["training"], "0 2 * * *", "exp-1")
    assert isinstance(body, kfp_server_api.V2beta1RecurringRun)
    data = validate_request(body)
    assert data["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}} and cron.note
    assert data["max_concurrency"] == "1" and data["no_catchup"] is True and data["mode"] == "ENABLE"
    assert data["service_account"] == "civicml-pipeline-runner" and data["experiment_id"] == "exp-1"
    params = data["runtime_config"]["parameters"]
    assert set(params) == {"config_json", "version", "started_by"} and RunConfig.from_json(params["config_json"]) == cfg
    spec = data["pipeline_spec"]
    assert spec["pipeline_spec"]["pipelineInfo"]["name"] == "civicml-training"
    # The Secret is referenced by name for env injection, never inlined as a value.
    assert "civicml-object-store" in json.dumps(spec["platform_spec"])


def test_run_request_for_monitoring(compiled):
    data = validate_request(build_run_request(RunConfig(), "monitoring", compiled["monitoring"], version="v1"))
    assert data["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "civicml-monitoring"
    assert data["runtime_config"]["parameters"]["version"] == "v1"
    assert data["display_name"] == "benefits-review-monitoring-v1"


def test_a_request_that_does_not_survive_the_api_models_is_refused(compiled):
    body, _ = build_recurring_run_request(RunConfig(), "training", compiled["training"], "0 0 2 * * *")
    body._mode = "SOMETIMES"  # bypasses the setter, as a hand-built dict would
    with pytest.raises(SubmitError, match=r"mode is 'SOMETIMES'; the KFP API accepts"):
        validate_request(body)
    body, _ = build_recurring_run_request(RunConfig(), "training", compiled["training"], "0 0 2 * * *")
    body.trigger = {"cronSchedule": {"cron": "0 0 2 * * *"}}  # camelCase: the REST gateway's spelling, not the model's
    with pytest.raises(SubmitError, match="field trigger.cronSchedule is not part of the API model"):
        validate_request(body)


def test_not_a_pipeline_is_refused(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("kind: Deployment\nspec: {}\n")
    with pytest.raises(SubmitError, match="not a compiled KFP pipeline"):
        pipeline_spec_from_yaml(bad)
    with pytest.raises(SubmitError, match="does not exist; run `civicml compile`"):
        pipeline_spec_from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(SubmitError, match="not config_json"):
        kfp_client.run_parameters(RunConfig(), {"root": {"inputDefinitions": {"parameters": {"x": {}}}}})


def test_compiled_monitoring_pipeline_branches_on_the_trigger_output(compiled):
    from kfp import components

    components.load_component_from_file(str(compiled["monitoring"]))  # the SDK's own parser accepts it
    spec = pipeline_spec_from_yaml(compiled["monitoring"])["pipeline_spec"]
    cond = spec["root"]["dag"]["tasks"]["condition-1"]["triggerPolicy"]["condition"]
    assert cond == "inputs.parameter_values['pipelinechannel--monitor-trigger-Output'] == 'retrain'"
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == {"config_json", "version"}


# -- CLI --------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch):
    from civicml.cli import app

    monkeypatch.chdir(tmp_path)  # no compiled YAML here: the command compiles one
    monkeypatch.setenv("MINIO_SECRET_KEY", SENTINEL)
    monkeypatch.setenv("MINIO_ACCESS_KEY", SENTINEL + "-access")
    monkeypatch.setenv("KFP_TOKEN", SENTINEL + "-token")
    monkeypatch.delenv("KFP_HOST", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_schedule_dry_run_prints_the_request_without_secrets(cli):
    res = cli("schedule", "--pipeline", "monitoring", "--cron", "0 0 6 * * *", "--dry-run")
    assert res.exit_code == 0, res.output
    assert SENTINEL not in res.output
    out = json.loads(res.stdout[res.stdout.index("{") :])
    rr = out["recurring_run"]
    assert out["pipeline"] == "monitoring"
    assert rr["trigger"]["cron_schedule"]["cron"] == "0 0 6 * * *"
    assert rr["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "civicml-monitoring"
    assert "config_json" in rr["runtime_config"]["parameters"]
    assert rr["max_concurrency"] == "1" and rr["no_catchup"] is True


def test_schedule_rejects_a_bad_cron_and_an_unknown_pipeline(cli):
    res = cli("schedule", "--pipeline", "training", "--cron", "0 0 2 * * 8", "--dry-run")
    assert res.exit_code == 1 and "day of week value 8 is outside 0-6" in res.output
    res = cli("schedule", "--pipeline", "inference", "--cron", "0 0 2 * * *", "--dry-run")
    assert res.exit_code == 1 and "unknown pipeline 'inference'" in res.output


def test_submit_dry_run_and_missing_host(cli):
    res = cli("submit", "--dry-run")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{") :])["run"]["runtime_config"]["parameters"]["version"] == ""
    assert SENTINEL not in res.output
    res = cli("submit")
    assert res.exit_code == 1 and "no KFP endpoint" in res.output and "KFP_HOST" in res.output


# -- the thin client calls, against a stand-in at the KFP API edge ------------------------------------------------


class _FakeClient:
    """Records what civicml sends; answers like the KFP API would."""

    instances: ClassVar[list] = []

    def __init__(self, host=None, existing_token=None):
        self.host, self.token, self.sent = host, existing_token, []
        outer = self

        class _Runs:
            def run_service_create_run(self, run):
                outer.sent.append(run)
                return kfp_server_api.V2beta1Run(run_id="run-123")

        class _RecurringRuns:
            def recurring_run_service_create_recurring_run(self, recurring_run):
                outer.sent.append(recurring_run)
                return kfp_server_api.V2beta1RecurringRun(recurring_run_id="rr-456")

        self.runs, self.recurring_runs = _Runs(), _RecurringRuns()
        _FakeClient.instances.append(self)

    def create_experiment(self, name, description=None, namespace=None):
        # Same signature as kfp.Client.create_experiment (kfp 2.17, kfp/client/client.py).
        self.experiment_namespace = namespace
        return kfp_server_api.V2beta1Experiment(experiment_id=f"exp-{name}", display_name=name, namespace=namespace)


def test_schedule_and_submit_send_validated_bodies(compiled, monkeypatch):
    import kfp

    monkeypatch.setattr(kfp, "Client", _FakeClient)
    monkeypatch.setenv("KFP_HOST", "http://ml-pipeline.kubeflow:8888")
    monkeypatch.setenv("KFP_TOKEN", "kfp-tok-3c9e")
    cfg = RunConfig()
    sub = kfp_client.schedule_run(cfg, "training", "0 0 2 * * *", compiled["training"])
    client = _FakeClient.instances[-1]
    assert (sub.id, sub.host, client.token) == ("rr-456", "http://ml-pipeline.kubeflow:8888", "kfp-tok-3c9e")
    sent = client.sent[-1]
    assert isinstance(sent, kfp_server_api.V2beta1RecurringRun) and sent.experiment_id == "exp-civicml"
    assert validate_request(sent)["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    run = kfp_client.submit_run(cfg, "monitoring", compiled["monitoring"], host="http://other:80")
    assert run.id == "run-123" and _FakeClient.instances[-1].host == "http://other:80"
    assert isinstance(_FakeClient.instances[-1].sent[-1], kfp_server_api.V2beta1Run)
    assert "kfp-tok-3c9e" not in json.dumps(run.request)


def test_experiment_is_created_in_a_namespace(compiled, monkeypatch):
    # Multi-user KFP refuses an experiment without a namespace; single-user ignores it.
    # upstream: kubeflow/pipelines backend/src/apiserver/resource/resource_manager.go:195-199 @ 2.17.0
    # upstream: kubeflow/pipelines backend/src/apiserver/resource/resource_manager.go:2456-2462 @ 2.17.0
    # upstream: kubeflow/pipelines backend/api/v2beta1/experiment.proto:90-91 @ 2.17.0 (field `namespace`)
    import kfp

    monkeypatch.setattr(kfp, "Client", _FakeClient)
    monkeypatch.setenv("KFP_HOST", "http://ml-pipeline.kubeflow:8888")
    cfg = RunConfig.model_validate({"deploy": {"namespace": "team-a"}})
    kfp_client.submit_run(cfg, "training", compiled["training"])
    assert _FakeClient.instances[-1].experiment_namespace == "team-a"
    kfp_client.schedule_run(cfg, "training", "0 0 2 * * *", compiled["training"], namespace="team-b")
    assert _FakeClient.instances[-1].experiment_namespace == "team-b"
    body = validate_request(kfp_client.build_experiment_request(cfg, "team-a"))
    assert body == {"display_name": "civicml", "description": "civicml runs of benefits-review", "namespace": "team-a"}


def test_namespace_falls_back_to_the_kube_context(monkeypatch, tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "x"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "from-context"}}],
                "current-context": "ctx",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    cfg = RunConfig.model_validate({"deploy": {"namespace": ""}})
    assert kfp_client.run_namespace(cfg) == "from-context"
    assert kfp_client.run_namespace(cfg, "explicit") == "explicit"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(kfp_client.SubmitError, match="--namespace"):
        kfp_client.run_namespace(cfg)


def test_triggered_retraining_on_a_cluster_submits_the_training_pipeline_on_the_new_batch(tmp_path, monkeypatch):
    import kfp

    from civicml import steps
    from civicml.governance.audit import AuditLog
    from civicml.orchestration.retrain import retrain_target
    from civicml.storage.store import LocalStore

    monkeypatch.setattr(kfp, "Client", _FakeClient)
    monkeypatch.delenv("CIVICML_STORE_URI", raising=False)
    monkeypatch.delenv("CIVICML_IMAGE", raising=False)
    monkeypatch.setenv("KFP_HOST", "http://ml-pipeline.kubeflow:8888")
    cfg = RunConfig.model_validate({"storage": {"uri": str(tmp_path / "store")}})
    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps({"source": "demo:benefits?month=6", "window_kind": "data_batch"}))
    assert retrain_target(cfg) == "kfp"
    result = steps.monitor_retrain(cfg, str(drift))
    assert result == {
        "target": "kfp",
        "run_id": "run-123",
        "host": "http://ml-pipeline.kubeflow:8888",
        "source": "demo:benefits?month=6",
    }
    sent = validate_request(_FakeClient.instances[-1].sent[-1])
    sent_cfg = RunConfig.from_json(sent["runtime_config"]["parameters"]["config_json"])
    assert sent_cfg.data.source == "demo:benefits?month=6"
    assert sent["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "civicml-training"
    executor = next(iter(sent["pipeline_spec"]["pipeline_spec"]["deploymentSpec"]["executors"].values()))
    assert executor["container"]["image"] == cfg.deploy.image
    assert AuditLog(LocalStore(tmp_path / "store")).records()[-1]["event"] == "retrain_started"


def test_retraining_submits_the_shipped_yaml_on_the_running_image_without_importing_pipelines(tmp_path, monkeypatch):
    """Issue 15 item 2: the retrain step submits pipelines/compiled/training_pipeline.yaml (package data)
    with the pod's image, and neither compiles nor imports pipelines/ or components/."""
    import sys
    from pathlib import Path

    import kfp

    from civicml import steps
    from civicml.orchestration.compiled import shipped_pipeline

    for name in [m for m in sys.modules if m.split(".")[0] in ("pipelines", "components")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(kfp, "Client", _FakeClient)
    monkeypatch.delenv("CIVICML_STORE_URI", raising=False)
    monkeypatch.setenv("CIVICML_IMAGE", "registry.example.gov/civicml@sha256:" + "ab" * 32)
    monkeypatch.setenv("KFP_HOST", "http://ml-pipeline.kubeflow:8888")
    cfg = RunConfig.model_validate({"storage": {"uri": str(tmp_path / "store")}})
    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps({"source": "demo:benefits?month=6", "window_kind": "data_batch"}))
    steps.monitor_retrain(cfg, str(drift))
    assert not [m for m in sys.modules if m.split(".")[0] in ("pipelines", "components")]
    sent = validate_request(_FakeClient.instances[-1].sent[-1])["pipeline_spec"]
    shipped = yaml.safe_load_all(shipped_pipeline("training").read_text())
    assert Path(shipped_pipeline("training")).parent.name == "compiled"
    spec, platform = next(shipped), next(shipped)
    executors = sent["pipeline_spec"]["deploymentSpec"]["executors"]
    assert {ex["container"]["image"] for ex in executors.values()} == {os.environ["CIVICML_IMAGE"]}
    # Everything but the image is the shipped YAML's: the same components, DAG and Kubernetes wiring.
    assert sent["pipeline_spec"]["root"] == spec["root"] and sent["platform_spec"] == platform
    for name, ex in executors.items():
        assert ex["container"]["command"] == spec["deploymentSpec"]["executors"][name]["container"]["command"]


def test_a_missing_compiled_pipeline_is_one_clear_error(monkeypatch, tmp_path):
    import importlib.util

    from civicml.orchestration.compiled import CompiledPipelineError, shipped_pipeline

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "__init__.py").write_text("")
    spec = importlib.util.spec_from_file_location(
        "pipelines", tmp_path / "pipelines" / "__init__.py", submodule_search_locations=[str(tmp_path / "pipelines")]
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(CompiledPipelineError, match="run `make compile` and reinstall"):
        shipped_pipeline("training")
    with pytest.raises(CompiledPipelineError, match="unknown pipeline 'nightly'"):
        shipped_pipeline("nightly")


def test_cluster_commands_warn_that_a_local_store_is_unreachable_from_pods(cli, monkeypatch, tmp_path):
    """Issue 13 item 13: submit/schedule/deploy --dry-run with a local storage.uri said nothing."""
    from civicml.storage.registry import Registry
    from civicml.storage.store import LocalStore

    monkeypatch.delenv("CIVICML_STORE_URI", raising=False)
    Registry(LocalStore(tmp_path / ".civicml")).commit("v1", {}, {"status": "approved"})
    for args in (
        ("submit", "--dry-run"),
        ("schedule", "--pipeline", "training", "--cron", "0 0 2 * * *", "--dry-run"),
        ("deploy", "v1", "--target", "kubernetes", "--dry-run"),
    ):
        res = cli(*args)
        assert "storage.uri is the local directory" in res.output and "s3://BUCKET/PREFIX" in res.output, args
    monkeypatch.setenv("CIVICML_STORE_URI", "s3://civicml/registry")
    res = cli("submit", "--dry-run")
    assert res.exit_code == 0 and "local directory" not in res.output


def _tasks(node):
    """Every (name, task) in a compiled pipeline spec, nested DAGs (dsl.If) included."""
    if isinstance(node, dict):
        yield from (node.get("tasks") or {}).items()
        for value in node.values():
            yield from _tasks(value)
    elif isinstance(node, list):
        for value in node:
            yield from _tasks(value)


def test_the_training_pipeline_carries_who_started_the_run_to_register(compiled):
    """Issue 19: separation of duties needs the submitting person on a cluster (pods run as a ServiceAccount)."""
    spec = pipeline_spec_from_yaml(compiled["training"])
    spec = spec.get("pipeline_spec", spec)  # with a platform spec (Secret env), the two come wrapped
    assert spec["root"]["inputDefinitions"]["parameters"]["started_by"]["parameterType"] == "STRING"
    register = [task for name, task in _tasks(spec) if name == "register"]
    assert len(register) == 1
    assert register[0]["inputs"]["parameters"]["started_by"] == {
        "componentInputParameter": "pipelinechannel--started_by"
    }


def test_submit_and_schedule_send_the_person_who_started_the_run(cli, monkeypatch):
    monkeypatch.setenv("CIVICML_ACTOR", "someone-else")
    res = cli("submit", "--dry-run", "--started-by", "A. Jones")
    assert res.exit_code == 0, res.output
    params = json.loads(res.stdout[res.stdout.index("{") :])["run"]["runtime_config"]["parameters"]
    assert params["started_by"] == "A. Jones"
    res = cli("schedule", "--pipeline", "training", "--cron", "0 0 2 * * *", "--dry-run", "--started-by", "B. Lee")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{") :])
    assert out["recurring_run"]["runtime_config"]["parameters"]["started_by"] == "B. Lee"
    res = cli("submit", "--dry-run", "--started-by", "  ")
    assert res.exit_code != 0 and "--started-by" in res.output
