"""Group fairness per sensitive attribute, computed with fairlearn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score


def _precision(y_true, y_pred) -> float:
    return precision_score(y_true, y_pred, zero_division=0)


def fairness_report(
    y_true: np.ndarray, y_pred: np.ndarray, sensitive: pd.DataFrame, min_group_count: int = 30
) -> dict[str, Any]:
    """Per-group rates and disparity measures for each sensitive attribute.

    Groups smaller than `min_group_count` are flagged `suppressed` (their rates are
    withheld from reports) but still counted, never silently dropped.
    """
    out: dict[str, Any] = {}
    for attr in sensitive.columns:
        groups = sensitive[attr].astype(str).fillna("<missing>").to_numpy()
        mf = MetricFrame(
            metrics={
                "count": count,
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "precision": _precision,
            },
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=groups,
        )
        by = mf.by_group
        per_group = {}
        for g, row in by.iterrows():
            n = int(row["count"])
            suppressed = n < min_group_count
            per_group[str(g)] = {
                "count": n,
                "suppressed": suppressed,
                **{k: (None if suppressed else float(row[k])) for k in ("selection_rate", "tpr", "fpr", "precision")},
            }
        out[attr] = {
            "groups": per_group,
            "suppressed_groups": [g for g, v in per_group.items() if v["suppressed"]],
            "demographic_parity_difference": float(
                demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
            ),
            "demographic_parity_ratio": float(demographic_parity_ratio(y_true, y_pred, sensitive_features=groups)),
            "equalized_odds_difference": float(equalized_odds_difference(y_true, y_pred, sensitive_features=groups)),
        }
    return out
