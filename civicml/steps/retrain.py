"""Step `monitor-retrain`: retrain on the window's data, locally or on KFP (`civicml.orchestration.retrain`)."""

from __future__ import annotations

from typing import Any

from civicml.config import RunConfig
from civicml.documents import DriftReport
from civicml.governance.audit import AuditLog
from civicml.orchestration.retrain import retrain_target, run_training_locally, submit_training
from civicml.steps._io import cfg_of, registry_of


def monitor_retrain(config: RunConfig | str, drift_path: str) -> dict[str, Any]:
    """Retrain on the new data: run the training pipeline locally, or submit it to KFP.

    A data-batch window trains on that batch; a serving-log window (no labels) trains on
    `data.source`. The training pipeline itself stops with `no_new_data` when the data
    is what the champion was trained on.

    Raises:
        RuntimeError: the local training run failed (the message has the failing step's error).
    """
    cfg = cfg_of(config)
    drift = DriftReport.read(drift_path)
    source = drift.source if drift.window_kind == "data_batch" and drift.source else cfg.data.source
    train_cfg = RunConfig.model_validate(
        {**cfg.model_dump(mode="json"), "data": {**cfg.data.model_dump(mode="json"), "source": source}}
    )
    target = retrain_target(cfg)
    audit = AuditLog(registry_of(cfg).store)
    if target == "kfp":
        result = {**submit_training(train_cfg), "source": source}
    else:
        result = {"target": "local", "source": source, **run_training_locally(train_cfg)}
        if not result["ok"]:
            audit.append("retrain_failed", result)
            raise RuntimeError(f"retraining on {source} failed: {result.get('error')} (log: {result.get('log')})")
    audit.append("retrain_started" if target == "kfp" else "retrain_finished", result)
    return result
