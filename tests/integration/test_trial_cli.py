"""`civicml trial` and `civicml tune --dry-run` as real subprocesses: Katib's StdOut collector regex
parses what the trial prints, locally (--data-dir) and the cluster way (--version, split in S3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubeflow_katib_api.models import V1beta1Experiment

from civicml import steps
from civicml.config import load_config
from civicml.evaluation.metrics import CLASSIFICATION_HEADLINE
from civicml.storage.store import open_store
from civicml.tuning.trial import load_trial_data, parse_katib_metrics, run_trial, upload_tuning_data

PARAMS = {"learning_rate": 0.1, "max_depth": 3, "min_child_weight": 1.0, "subsample": 0.9}
ROUNDS = 30


def cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "civicml.cli", *args],
        cwd=cwd,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A small config and the data directory validate_data writes for it."""
    root = tmp_path_factory.mktemp("trial")
    config = {
        "data": {
            "demo": {"rows": 1500},
            "pii_columns": ["claimant_name"],
            "sensitive_attributes": ["sex", "age_band", "region"],
        },
        "model": {"params": {"n_estimators": ROUNDS}, "n_threads": 1},
        "storage": {"uri": str(root / "store")},
        "tuning": {"early_stopping": {"min_trials_required": 2, "start_step": 5}},
    }
    (root / "civicml.yaml").write_text(yaml.safe_dump(config))
    cfg = load_config(root / "civicml.yaml")
    steps.validate_data(cfg, str(root / "data"), version="v-trial-test")
    return root, cfg


def expected_metrics(cfg, data_dir: Path) -> dict[str, float]:
    train, valid, info = load_trial_data(data_dir)
    return run_trial(cfg, train, valid, info, dict(PARAMS), emit=lambda line: None)


@pytest.mark.slow
def test_trial_output_parses_with_katib_regex(workdir):
    root, cfg = workdir
    proc = cli("trial", "--data-dir", "data", "--params", json.dumps(PARAMS), cwd=root)
    assert proc.returncode == 0, proc.stderr
    parsed = parse_katib_metrics(proc.stdout)
    assert set(parsed) == set(CLASSIFICATION_HEADLINE)
    # Early stopping is configured, so the objective is printed after every round, then the final value last.
    assert len(parsed["roc_auc"]) == ROUNDS + 1
    assert all(len(v) == 1 for k, v in parsed.items() if k != "roc_auc")
    expected = expected_metrics(cfg, root / "data")
    for name, values in parsed.items():
        assert values[-1] == pytest.approx(expected[name], rel=1e-9), name
    assert 0.5 < parsed["roc_auc"][-1] <= 1.0
    # Every stdout line is a metric line: nothing else for the collector to trip on.
    assert all("=" in line for line in proc.stdout.splitlines())


@pytest.mark.slow
def test_trial_reads_the_split_from_the_store_by_version(workdir, s3_env):
    root, cfg = workdir
    store = open_store(s3_env.uri)
    upload_tuning_data(cfg, root / "data", "v-trial-test", store)
    assert store.exists("staging/v-trial-test/tuning-data/index.json")
    # The way Katib runs it: flags with text values, store from the environment (set by s3_env).
    args = ["trial", "--version", "v-trial-test", "--no-round-metrics"]
    for name, value in PARAMS.items():
        args += ["--param", f"{name}={value}"]
    proc = cli(*args, cwd=root)
    assert proc.returncode == 0, proc.stderr
    parsed = parse_katib_metrics(proc.stdout)
    assert all(len(v) == 1 for v in parsed.values())
    expected = expected_metrics(cfg, root / "data")
    assert {k: v[0] for k, v in parsed.items()} == pytest.approx(expected, rel=1e-9)


def invoke(*args: str, cwd: Path, monkeypatch) -> tuple[int, str, str]:
    """Run the CLI in-process (the same app; used for the fast error paths)."""
    from typer.testing import CliRunner

    from civicml.cli import app

    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_bad_parameters_exit_nonzero_with_a_clear_message_and_no_metrics(workdir, monkeypatch):
    root, _ = workdir
    bad = {**PARAMS, "max_depth": 40}
    code, out, err = invoke(
        "trial", "--data-dir", "data", "--params", json.dumps(bad), cwd=root, monkeypatch=monkeypatch
    )
    assert code == 1
    assert "parameter max_depth: 40 is outside 2.0..8.0" in err
    assert parse_katib_metrics(out) == {}
    code, out, err = invoke(
        "trial", "--data-dir", "data", "--params", '{"max_depth": ', cwd=root, monkeypatch=monkeypatch
    )
    assert code == 1 and "--params is not valid JSON" in err
    code, out, err = invoke(
        "trial", "--data-dir", "data", "--version", "v1", "--params", "{}", cwd=root, monkeypatch=monkeypatch
    )
    assert code == 1 and "exactly one of --data-dir" in err
    code, out, err = invoke("trial", "--version", "v-missing", "--params", "{}", cwd=root, monkeypatch=monkeypatch)
    assert code == 1 and "no tuning data for version 'v-missing'" in err


def test_tune_katib_dry_run_writes_a_valid_experiment(workdir, monkeypatch):
    root, _ = workdir
    monkeypatch.setenv("CIVICML_STORE_URI", "s3://civicml/registry")
    code, _, err = invoke(
        "tune",
        "--backend",
        "katib",
        "--dry-run",
        "--version",
        "v-dry",
        "-o",
        "exp.yaml",
        cwd=root,
        monkeypatch=monkeypatch,
    )
    assert code == 0, err
    body = yaml.safe_load((root / "exp.yaml").read_text())
    assert V1beta1Experiment.from_dict(body).to_dict() == body
    container = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["trial", "--version", "v-dry"]
    assert "warning" not in err
    code, _, err = invoke("tune", "--backend", "optuna", "--dry-run", cwd=root, monkeypatch=monkeypatch)
    assert code == 1 and "--dry-run applies to --backend katib only" in err


class FakeKatibController:
    """Stands in for the API server + Katib controller: on create it runs each trial the way the
    Job would (the template's args with `${trialParameters.*}` substituted, through the real CLI
    in-process), collects metrics with Katib's regex and reports the optimum in the status."""

    def __init__(self, assignments: list[dict[str, str]]):
        self.assignments = assignments
        self.body: dict | None = None
        self.trial_outputs: list[str] = []
        self.deleted = False

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        from typer.testing import CliRunner

        from civicml.cli import app

        assert V1beta1Experiment.from_dict(body).to_dict() == body
        self.body = body
        spec = body["spec"]
        container = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["civicml"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["CIVICML_STORE_URI"] == os.environ["CIVICML_STORE_URI"]
        names = [spec["objective"]["objectiveMetricName"], *spec["objective"]["additionalMetricNames"]]
        observed = []
        for assignment in self.assignments:
            args = list(container["args"])
            for name, value in assignment.items():
                args = [a.replace(f"${{trialParameters.{name}}}", value) for a in args]
            assert not any("${" in a for a in args)
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.stderr
            self.trial_outputs.append(result.stdout)
            metrics = parse_katib_metrics(result.stdout, names)
            observed.append({n: v[-1] for n, v in metrics.items()})
        best = max(range(len(observed)), key=lambda i: observed[i]["roc_auc"])
        self.status = {
            "conditions": [{"type": "Succeeded", "status": "True", "reason": "ExperimentMaxTrialsReached"}],
            "currentOptimalTrial": {
                "bestTrialName": f"{body['metadata']['name']}-{best}",
                "parameterAssignments": [{"name": k, "value": v} for k, v in self.assignments[best].items()],
                "observation": {"metrics": [{"name": n, "latest": repr(v)} for n, v in observed[best].items()]},
            },
        }
        return body

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        return {**self.body, "status": self.status}

    def list_namespaced_custom_object(self, group, version, namespace, plural, label_selector=None):
        return {"items": []}

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.deleted = True


@pytest.mark.slow
class FakeCore:
    """CoreV1Api stand-in: `read_namespace` returns a namespace with the given labels."""

    def __init__(self, labels: dict[str, str]):
        self.labels = labels

    def read_namespace(self, name: str):
        return {"metadata": {"name": name, "labels": self.labels}}


def test_tune_step_with_katib_backend_end_to_end(workdir, s3_env, monkeypatch, tmp_path):
    """steps.tune uploads the split to S3, submits the Experiment, trials read it back by version."""
    from civicml.tuning import katib_backend

    root, cfg = workdir
    cfg = cfg.model_copy(update={"tuning": cfg.tuning.model_copy(update={"backend": "katib"})})
    fake = FakeKatibController(
        [
            {"learning_rate": "0.05", "max_depth": "2", "min_child_weight": "1.0", "subsample": "0.7"},
            {"learning_rate": "0.2", "max_depth": "5", "min_child_weight": "3.0", "subsample": "0.9"},
        ]
    )
    monkeypatch.setattr(katib_backend, "_default_api", lambda: fake)
    # The early-stopping preflight reads the tuning namespace's labels; this one enforces nothing.
    monkeypatch.setattr(katib_backend, "_default_core", lambda: FakeCore({}))
    result = steps.tune(
        cfg,
        str(root / "data"),
        str(tmp_path / "tuning.json"),
        str(tmp_path / "trials.html"),
        trials_md_path=str(tmp_path / "trials.md"),
    )
    store = open_store(s3_env.uri)
    assert store.exists("staging/v-trial-test/tuning-data/index.json")
    assert len(fake.trial_outputs) == 2 and fake.deleted
    assert result["backend"] == "katib"
    assert set(result["best_params"]) == {"learning_rate", "max_depth", "min_child_weight", "subsample"}
    assert isinstance(result["best_params"]["max_depth"], int)
    assert json.loads((tmp_path / "tuning.json").read_text())["best_params"] == result["best_params"]
    assert "katib / tpe" in (tmp_path / "trials.md").read_text()
