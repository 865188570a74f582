"""Live performance: predictions joined with the outcomes reported back, against the test metrics.

The model server logs every scored row (`logs/predictions/...`: request_id, row, arm,
version, ts, features, score, prediction) and every reported outcome
(`logs/feedback/...`: request_id, row, outcome). Joining them on (request_id, row)
gives labelled live predictions; the headline metrics and their bootstrap CIs come
from `civicml.evaluation.metrics`, the same functions the test evaluation uses, so
live and test numbers are directly comparable.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from civicml.catalog import LOWER_IS_BETTER
from civicml.config import MonitoringConfig
from civicml.evaluation.metrics import (
    bootstrap_intervals,
    classification_metrics,
    regression_metrics,
)
from civicml.serving import logread


def default_metric(task: str, policy: MonitoringConfig) -> str:
    """The metric watched live: `monitoring.performance_metric`, else roc_auc (r2 for regression)."""
    if policy.performance_metric:
        return policy.performance_metric
    return "roc_auc" if task == "binary_classification" else "r2"


def join_feedback(
    predictions: list[dict[str, Any]], feedback: list[dict[str, Any]], version: str | None = None
) -> pd.DataFrame:
    """Predictions that have a reported outcome, one row each, with numeric score and outcome.

    The join and its rule (the first label of a prediction counts; feedback without a matching
    prediction is ignored) are `serving.logread.join_feedback`'s, shared with the A/B report.

    Args:
        predictions: Prediction-log records.
        feedback: Feedback-log records.
        version: Keep only predictions served by this model version; None keeps all.

    Returns:
        Columns request_id, row, version, arm, ts, score, prediction, outcome (may be empty).
    """
    cols = ["request_id", "row", "version", "arm", "ts", "score", "prediction", "outcome"]
    joined = logread.join_feedback(predictions, feedback, version=version)
    joined["score"] = pd.to_numeric(joined["score"], errors="coerce")
    joined["outcome"] = pd.to_numeric(joined["outcome"], errors="coerce")
    return joined.dropna(subset=["score", "outcome"])[cols].reset_index(drop=True)


def live_performance(
    joined: pd.DataFrame,
    task: str,
    reference_metrics: dict[str, float],
    policy: MonitoringConfig,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Headline metrics over the labelled window, with CIs, compared with the version's test metrics.

    Args:
        joined: Output of `join_feedback`.
        task: `binary_classification` or `regression`.
        reference_metrics: The version's test metrics (manifest `metrics`).
        policy: `min_feedback_rows`, `max_metric_drop`, `performance_metric`.
        n_resamples: Bootstrap resamples for the CIs.
        seed: Bootstrap seed.

    Returns:
        `status` (`ok` or `insufficient_feedback`), `rows`, `metric` (the watched one),
        `metrics`, `confidence_intervals`, `reference`, `drop` per metric (positive = worse
        than test) and `watched_drop`.
    """
    metric = default_metric(task, policy)
    n = len(joined)
    base: dict[str, Any] = {
        "rows": n,
        "metric": metric,
        "reference": reference_metrics,
        "min_feedback_rows": policy.min_feedback_rows,
    }
    if n < policy.min_feedback_rows:
        return {
            **base,
            "status": "insufficient_feedback",
            "metrics": {},
            "confidence_intervals": {},
            "drop": {},
            "watched_drop": None,
            "message": f"{n} labelled prediction(s) in the window; live performance is judged from "
            f"{policy.min_feedback_rows} (monitoring.min_feedback_rows)",
        }
    y = joined["outcome"].to_numpy()
    s = joined["score"].to_numpy(dtype="float64")
    if task == "binary_classification":
        y = y.astype(int)
        metrics = classification_metrics(y, s)
    else:
        metrics = regression_metrics(y.astype("float64"), s)
    cis = bootstrap_intervals(task, y, s, n_resamples=n_resamples, seed=seed) if n_resamples > 0 else {}
    drop = metric_drops(metrics, reference_metrics)
    return {
        **base,
        "status": "ok",
        "metrics": {k: float(v) for k, v in metrics.items()},
        "confidence_intervals": cis,
        "drop": drop,
        "watched_drop": drop.get(metric),
        "by_arm": {str(k): int(v) for k, v in joined["arm"].fillna("unknown").value_counts().items()},
    }


def metric_drops(live: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """How much worse than `reference` each live metric is (positive = worse), by its direction.

    Metrics missing from the reference or not finite on either side are left out.
    """
    drop: dict[str, float] = {}
    for name, value in live.items():
        ref = reference.get(name)
        if ref is None or not np.isfinite(value) or not np.isfinite(ref):
            continue
        drop[name] = float(value - ref) if name in LOWER_IS_BETTER else float(ref - value)
    return drop
