"""Choose a classification decision threshold on the validation split, by a configured rule.

Rules (`model.threshold.rule`):

* `fixed` — `value` (default 0.5);
* `max_f1` — the score threshold with the highest F1 (scikit-learn's `precision_recall_curve`);
* `max_youden` — the threshold with the highest Youden's J = TPR − FPR (`roc_curve`);
* `target_precision` — the lowest threshold whose precision reaches `value` (the most recall at that
  precision);
* `target_recall` — the highest threshold whose recall reaches `value` (the fewest positives at that
  recall).

The threshold is chosen on validation rows only (never the test rows the gate judges), stored in the
model's `model.json` (so the model hash covers it) and used by evaluation and the server.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

from civicml.catalog import DEFAULT_THRESHOLD

RULES = ("fixed", "max_f1", "max_youden", "target_precision", "target_recall")


class ThresholdError(ValueError):
    """No threshold satisfies the rule on the validation rows."""


def choose_threshold(y_true: np.ndarray, score: np.ndarray, rule: str = "fixed", value: float | None = None) -> dict:
    """The decision threshold and how it was chosen.

    Args:
        y_true: 0/1 validation labels.
        score: Predicted probabilities of class 1 on the same rows.
        rule: One of `RULES`.
        value: The fixed threshold, or the target precision/recall.

    Returns:
        `{rule, value, threshold, n_valid, precision, recall}` (precision and recall on the validation rows
        at the chosen threshold).

    Raises:
        ThresholdError: unknown rule, a single-class validation split for a data-driven rule, or an
            unreachable target.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(score, dtype="float64")
    if rule not in RULES:
        raise ThresholdError(f"unknown threshold rule {rule!r}; use one of {', '.join(RULES)}")
    if rule == "fixed":
        threshold = DEFAULT_THRESHOLD if value is None else float(value)
    else:
        if len(np.unique(y)) < 2:
            raise ThresholdError(
                f"threshold rule {rule} needs both classes in the validation split; it has only {np.unique(y)}. "
                "Use model.threshold.rule: fixed or a larger split.valid_fraction"
            )
        threshold = _data_driven(y, s, rule, value)
    pred = (s >= threshold).astype(int)
    return {
        "rule": rule,
        "value": value,
        "threshold": float(threshold),
        "n_valid": len(y),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
    }


def _data_driven(y: np.ndarray, s: np.ndarray, rule: str, value: float | None) -> float:
    if rule == "max_youden":
        fpr, tpr, thr = skm.roc_curve(y, s)
        keep = np.isfinite(thr)  # the first threshold is +inf (nothing predicted positive)
        return float(thr[keep][np.argmax((tpr - fpr)[keep])])
    precision, recall, thr = skm.precision_recall_curve(y, s)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if rule == "max_f1":
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        return float(thr[np.argmax(f1)])
    if value is None or not 0 < value <= 1:
        raise ThresholdError(f"threshold rule {rule} needs a target value in (0, 1], e.g. value: 0.8")
    if rule == "target_precision":
        ok = np.flatnonzero(precision >= value)
        if not len(ok):
            raise ThresholdError(
                f"no threshold reaches precision {value} on the validation rows (best {precision.max():.3f})"
            )
        return float(thr[ok[0]])  # thresholds ascend: the first is the lowest, so the most recall
    ok = np.flatnonzero(recall >= value)
    return float(thr[ok[-1]])  # recall falls as the threshold rises; recall at thr[0] is 1.0


def describe(choice: dict[str, Any]) -> str:
    """One line for the card and the CLI."""
    target = "" if choice.get("value") is None or choice["rule"] == "fixed" else f" {choice['value']}"
    return (
        f"threshold {choice['threshold']:.4f} chosen by rule {choice['rule']}{target} on {choice['n_valid']} "
        f"validation rows (precision {choice['precision']:.3f}, recall {choice['recall']:.3f} there)"
    )
