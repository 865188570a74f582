"""The monitoring pipeline end to end through kfp.local: drift triggers retraining, no drift does not."""

from pathlib import Path

import pytest

from civicml import steps
from civicml.config import load_config
from civicml.governance.audit import AuditLog
from civicml.orchestration.local import failure_detail, run_pipeline
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore
from pipelines.monitoring_pipeline import compile_monitoring_pipeline

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kfp_local_isolated")]


def _cfg(store: Path, **over):
    base = {
        "storage.uri": str(store),
        "data.demo.rows": 2000,
        "tuning.max_trials": 2,
        "policy.fairness": [],
        "policy.min_metrics": {"roc_auc": 0.5},
        "monitoring.min_new_rows": 500,
    }
    base.update(over)
    return load_config(ROOT / "civicml.yaml", base)


def _train_champion(cfg, work: Path) -> str:
    """The month-1 champion, trained by calling the steps in-process (the pipeline's own tests cover kfp.local)."""
    data, params, model = str(work / "data"), str(work / "params.json"), str(work / "model")
    info = steps.validate_data(cfg, data)
    steps.tune(cfg, data, params)
    steps.train(cfg, data, params, model)
    steps.evaluate(cfg, data, model, str(work / "evaluation.json"))
    assert steps.gate(cfg, str(work / "evaluation.json"), str(work / "gate.json"))["decision"] == "deploy"
    steps.register(cfg, data, params, model, str(work / "evaluation.json"), str(work / "gate.json"))
    steps.deploy(cfg, info["version"])
    return info["version"]


def _decisions(store: Path) -> list[dict]:
    return [r["payload"] for r in AuditLog(LocalStore(store)).records() if r["event"] == "retrain_decision"]


def _monitor(cfg, champion: str, workdir: Path, yaml_path: Path) -> list[tuple[str, str]]:
    """Run the compiled monitoring pipeline on `cfg`'s window; assert it succeeded; its (task, state) events."""
    events: list[tuple[str, str]] = []
    run = run_pipeline(
        cfg, version=champion, workdir=workdir, pipeline_yaml=yaml_path, on_event=lambda t, w: events.append((t, w))
    )
    assert run.ok, failure_detail(run)
    return events


def test_monitoring_pipeline_retrains_on_drift_and_not_without(tmp_path):
    store = tmp_path / "store"
    champion = _train_champion(_cfg(store), tmp_path / "champion")
    registry = Registry(LocalStore(store))
    yaml_path = compile_monitoring_pipeline(
        tmp_path / "monitoring.yaml", image="civicml:local", default_config_json=_cfg(store).to_json()
    )

    # A fresh sample of the reference month (other seed): no drift, no retraining, no new version.
    same = _cfg(store, **{"monitoring.window_source": "demo:benefits?seed=99"})
    events = _monitor(same, champion, tmp_path / "mon-same", yaml_path)
    tasks = [t for t, w in events if w == "SUCCESS"]
    assert {"monitor-drift", "monitor-trigger", "monitor-report"} <= set(tasks), events
    assert "monitor-retrain" not in [t for t, _ in events]
    assert [v["version"] for v in registry.versions()] == [champion]
    first = _decisions(store)
    assert [d["decision"] for d in first] == ["no_retrain"]
    assert first[0]["version"] == champion and first[0]["source"] == "demo:benefits?seed=99"

    # Month 6 (income, claim amounts and channel drifted): the policy fires and training runs on that batch.
    drifted = _cfg(store, **{"monitoring.window_source": "demo:benefits?month=6"})
    events = _monitor(drifted, champion, tmp_path / "mon-drift", yaml_path)
    assert ("monitor-retrain", "SUCCESS") in events, events
    decisions = _decisions(store)
    assert [d["decision"] for d in decisions] == ["no_retrain", "retrain"]
    fired = {r["rule"] for r in decisions[1]["rules"] if r["fired"]}
    assert "psi_threshold" in fired
    versions = registry.versions()
    assert len(versions) == 2
    new = registry.manifest(versions[-1]["version"])
    assert new["lineage"]["data_source"] == "demo:benefits?month=6"
    assert new["lineage"]["data_fingerprint"] != registry.manifest(champion)["lineage"]["data_fingerprint"]
    events_seen = [r["event"] for r in AuditLog(LocalStore(store)).records()]
    assert "retrain_finished" in events_seen
