"""Step `monitor-trigger`: apply the retrain policy to the measurements; write the decision and audit it."""

from __future__ import annotations

from typing import Any

from civicml.config import RunConfig
from civicml.documents import DriftReport
from civicml.steps._io import cfg_of, read_optional_json, registry_of, write_json


def monitor_trigger(
    config: RunConfig | str, drift_path: str, performance_path: str | None, decision_path: str
) -> dict[str, Any]:
    """Apply the retrain policy to the measurements; write the decision and audit it (`retrain_decision`)."""
    from civicml.monitoring.trigger import decide_retrain, record_decision

    cfg = cfg_of(config)
    drift = DriftReport.read(drift_path).as_dict()
    perf = read_optional_json(performance_path)
    decision = decide_retrain(
        cfg.monitoring,
        drift,
        perf,
        new_fingerprint=drift.get("fingerprint") if drift.get("window_kind") == "data_batch" else None,
        champion_fingerprint=drift.get("champion_fingerprint"),
    )
    decision.update(version=drift.get("version"), source=drift.get("source"))
    record_decision(
        registry_of(cfg).store,
        decision,
        {
            "version": drift.get("version"),
            "source": drift.get("source"),
            "window_rows": drift.get("window_rows"),
            "drift_share": drift["summary"]["drift_share"],
            "max_psi": drift["summary"]["max_psi"],
        },
    )
    write_json(decision_path, decision)
    return decision
