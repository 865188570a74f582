"""What a step shows in the KFP UI: metrics artifacts, filled in the component's own process.

Kept apart from the step modules so that a component that ran its step in the warm host
(`civicml.steps.host`) imports nothing heavy to publish the result.
"""

from __future__ import annotations

from typing import Any


def log_kfp_metrics(evaluation: dict[str, Any], metrics: Any, classification: Any = None) -> None:
    """Publish the evaluation to KFP UI artifacts (`Metrics`, `ClassificationMetrics`)."""
    for name, value in evaluation["metrics"].items():
        metrics.log_metric(name, float(value))
    if classification is not None and "roc" in evaluation:
        roc = evaluation["roc"]
        classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
        classification.log_confusion_matrix(["0", "1"], evaluation["confusion_matrix"])
