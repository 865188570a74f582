"""Retrain policy: each trigger, each guard, and the audit record."""

import pytest

from civicml.config import MonitoringConfig, parse_config
from civicml.governance.audit import AuditLog
from civicml.monitoring.trigger import NO_RETRAIN, RETRAIN, decide_retrain, record_decision
from civicml.storage.store import LocalStore

POLICY = MonitoringConfig(psi_threshold=0.25, max_drift_share=0.3, max_metric_drop=0.05, min_new_rows=500)


def _drift(rows=1000, share=0.0, max_psi=0.02, drifted=()):
    return {
        "status": "ok" if rows else "empty",
        "window_rows": rows,
        "summary": {
            "drift_share": share,
            "max_psi": max_psi,
            "max_psi_feature": "monthly_income",
            "drifted": list(drifted),
        },
    }


def _perf(drop, status="ok"):
    return {
        "status": status,
        "metric": "roc_auc",
        "metrics": {"roc_auc": 0.8 - drop},
        "reference": {"roc_auc": 0.8},
        "watched_drop": drop if status == "ok" else None,
        "message": "12 labelled prediction(s)",
    }


def _fired(decision):
    return {r["rule"] for r in decision["rules"] if r["fired"]}


def test_quiet_window_does_not_retrain():
    d = decide_retrain(POLICY, _drift(), _perf(0.01), new_fingerprint="sha256:new", champion_fingerprint="sha256:old")
    assert d["decision"] == NO_RETRAIN and d["triggers"] == [] and d["blocked_by"] == []
    assert "within the policy" in d["reason"]


@pytest.mark.parametrize(
    "drift,perf,rule",
    [
        (_drift(share=0.3, drifted=["a", "b", "c"]), None, "max_drift_share"),
        (_drift(max_psi=0.25), None, "psi_threshold"),
        (_drift(), _perf(0.051), "max_metric_drop"),
    ],
)
def test_each_trigger_fires_at_its_threshold(drift, perf, rule):
    d = decide_retrain(POLICY, drift, perf)
    assert d["decision"] == RETRAIN and d["triggers"] == [rule]
    r = next(r for r in d["rules"] if r["rule"] == rule)
    assert r["threshold"] in (0.3, 0.25, 0.05) and r["value"] is not None
    assert rule in d["reason"]


def test_just_below_thresholds_does_not_fire():
    d = decide_retrain(POLICY, _drift(share=0.29, max_psi=0.2499), _perf(0.05))
    assert d["decision"] == NO_RETRAIN and _fired(d) == set()


def test_guards_block_retraining():
    small = decide_retrain(POLICY, _drift(rows=499, max_psi=0.9))
    assert small["decision"] == NO_RETRAIN and small["blocked_by"] == ["min_new_rows"]
    assert "499 < 500" in small["reason"]
    same = decide_retrain(POLICY, _drift(max_psi=0.9), new_fingerprint="sha256:x", champion_fingerprint="sha256:x")
    assert same["decision"] == NO_RETRAIN and same["blocked_by"] == ["new_data_fingerprint"]
    assert "exactly the data the champion was trained on" in same["reason"]
    assert "psi_threshold" in _fired(same)  # still reported, just not acted on
    empty = decide_retrain(POLICY, _drift(rows=0))
    assert empty["decision"] == NO_RETRAIN


def test_insufficient_feedback_is_recorded_not_judged():
    d = decide_retrain(POLICY, _drift(), _perf(0.5, status="insufficient_feedback"))
    rule = next(r for r in d["rules"] if r["rule"] == "max_metric_drop")
    assert rule["fired"] is False and rule["value"] is None and "labelled" in rule["note"]


def test_decision_is_audited(tmp_path):
    store = LocalStore(tmp_path)
    d = decide_retrain(POLICY, _drift(max_psi=0.4))
    rec = record_decision(store, d, {"version": "v1", "source": "demo:benefits?month=6"})
    log = AuditLog(store)
    assert log.records()[-1]["event"] == "retrain_decision"
    assert rec["payload"]["decision"] == RETRAIN and rec["payload"]["version"] == "v1"
    assert any(r["rule"] == "psi_threshold" and r["fired"] for r in rec["payload"]["rules"])
    assert log.verify()[0]


def test_monitoring_config_rejects_bad_values():
    from civicml.config import ConfigError

    with pytest.raises(ConfigError, match="monitoring.performance_metric"):
        parse_config({"monitoring": {"performance_metric": "auc"}})
    with pytest.raises(ConfigError, match="credentials"):
        parse_config({"monitoring": {"kfp_host": "https://user:pw@kfp.example.gov"}})
    with pytest.raises(ConfigError, match="monitoring.retrain_target"):
        parse_config({"monitoring": {"retrain_target": "cloud"}})


def test_monitor_cli_bad_paths(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from civicml.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CIVICML_STORE_URI", str(tmp_path / "store"))
    runner = CliRunner()
    res = runner.invoke(app, ["monitor", "--data", "demo:benefits?month=6"])
    assert res.exit_code == 1 and "no champion yet" in res.output
    res = runner.invoke(app, ["monitor", "--data", "x.csv", "--from-serving-log"])
    assert res.exit_code == 2 and "not both" in res.output
