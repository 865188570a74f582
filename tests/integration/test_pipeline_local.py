"""The whole training pipeline through kfp.local, both gate branches, and the CLI around it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from civicml.config import load_config
from civicml.orchestration.local import failure_detail, run_pipeline
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kfp_local_isolated")]


def _cfg(tmp_path, **over):
    base = {
        "storage.uri": str(tmp_path / "store"),
        "data.demo.rows": 2500,
        "tuning.max_trials": 2,
        "policy.fairness": [],
        "policy.min_metrics": {"roc_auc": 0.5},
    }
    base.update(over)
    return load_config(ROOT / "civicml.yaml", base)


def test_deploy_branch_then_reject_branch(tmp_path):
    cfg = _cfg(tmp_path)
    events = []
    run = run_pipeline(cfg, on_event=lambda task, what: events.append((task, what)))
    assert run.ok, failure_detail(run)
    reg = Registry(LocalStore(cfg.storage.uri))
    first = reg.manifest(run.version)
    assert first["gate"]["decision"] == "deploy" and first["status"] == "approved"
    assert reg.get_alias("champion") == run.version
    assert ("deploy", "SUCCESS") in events
    assert reg.verify(run.version) == []
    # The steps' outputs (train/valid/test Parquet: personal data) are gone once the run ends; the
    # compiled pipeline and the log stay (issue 12 item 13).
    run_dir = Path(cfg.storage.uri) / "runs" / run.version
    assert run.log_path.is_file() and not (run_dir / "outputs").exists()
    assert not list(run_dir.rglob("*.parquet"))

    strict = _cfg(tmp_path, **{"policy.min_metrics": {"roc_auc": 0.999}, "data.demo.month": 4})
    events.clear()
    run2 = run_pipeline(strict, on_event=lambda task, what: events.append((task, what)))
    assert run2.ok, failure_detail(run2)
    second = reg.manifest(run2.version)
    assert second["gate"]["decision"] == "reject"
    assert "roc_auc >= 0.999" in second["gate"]["reason"]
    assert reg.get_alias("champion") == run.version  # the alias did not move
    assert "deploy" not in [task for task, _ in events]
    assert [m["version"] for m in reg.versions()] == [run.version, run2.version]


def test_bad_input_fails_in_validate_data_and_writes_no_version(tmp_path):
    bad = tmp_path / "claims.csv"
    bad.write_text("a,b\n1,2\n3,4\n")
    cfg = _cfg(tmp_path, **{"data.source": str(bad)})
    events = []
    run = run_pipeline(cfg, on_event=lambda task, what: events.append((task, what)))
    assert not run.ok
    assert events[-1] == ("validate-data", "FAILURE")
    assert "target column 'needs_review'" in failure_detail(run)
    assert Registry(LocalStore(cfg.storage.uri)).versions() == []
    # A failed run removes its data too; with the debug flag the outputs are kept.
    assert not (run.log_path.parent / "outputs").exists()
    kept = run_pipeline(cfg, keep_outputs=True)
    assert not kept.ok and (kept.log_path.parent / "outputs").is_dir()


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "civicml.cli.__main__", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_cli_run_prints_summary_and_models_list(tmp_path):
    raw = yaml.safe_load((ROOT / "civicml.yaml").read_text())
    raw["data"]["demo"]["rows"] = 2500
    raw["tuning"]["max_trials"] = 2
    raw["policy"]["fairness"] = []
    (tmp_path / "civicml.yaml").write_text(yaml.safe_dump(raw))
    res = _cli("run", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    assert summary["ok"] and summary["decision"] in {"deploy", "reject", "pending_approval"}
    assert Path(summary["model_card"]).is_file()
    assert set(summary["metrics"]) >= {"accuracy", "precision", "recall", "f1", "roc_auc"}

    bad = _cli("run", "--set", "data.source=nope.csv", cwd=tmp_path)
    assert bad.returncode == 1
    assert "does not exist" in bad.stderr and "Traceback" not in bad.stderr
