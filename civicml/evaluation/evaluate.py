"""Evaluate a trained model on the test split: metrics, fairness, and the champion comparison."""

from __future__ import annotations

from typing import Any

import pandas as pd

from civicml.config import RunConfig
from civicml.evaluation.fairness import fairness_report
from civicml.evaluation.metrics import evaluate_predictions
from civicml.modeling.estimators import TrainedModel


def evaluate_model(cfg: RunConfig, model: TrainedModel, test: pd.DataFrame, registry=None) -> dict[str, Any]:
    """Build the evaluation document for `model` on `test`.

    Args:
        cfg: Run config (task, sensitive attributes, policy.min_group_count).
        model: The challenger.
        test: Test rows with target and sensitive attributes.
        registry: When given and a champion exists, the champion is scored on the same rows.
    """
    spec = model.spec
    y = spec.encode_target(test[spec.target])
    score = model.score(test)
    doc: dict[str, Any] = {"task": cfg.task, "n_test": int(len(test)), "threshold": 0.5}
    doc.update(evaluate_predictions(cfg.task, y, score))
    if cfg.task == "binary_classification" and cfg.data.sensitive_attributes:
        y_pred = (score >= 0.5).astype(int)
        doc["fairness"] = fairness_report(
            y, y_pred, test[cfg.data.sensitive_attributes], min_group_count=cfg.policy.min_group_count
        )
    return doc
