"""Headline metrics, curves and bootstrap confidence intervals.

Point estimates come from scikit-learn's metric functions. The bootstrap cannot
call scikit-learn 1000 times per metric within budget (≈5 ms per `roc_auc_score`
call on 20k rows), so it evaluates the same formulas on *resample weights*: a
bootstrap resample is a vector of multinomial counts `w` over the original rows,
and every metric here is a weighted sum (confusion counts, ranks for ROC-AUC,
cumulative precision/recall for average precision). With `w = 1` these formulas
reproduce scikit-learn exactly, and `tests/unit/test_metrics.py` checks that
each resample's value equals scikit-learn's on the materialised resample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from civicml.catalog import CLASSIFICATION_METRICS, REGRESSION_METRICS
from civicml.evaluation.bootstrap import Bootstrap, Resampling, on_bootstrap
from civicml.evaluation.ranking import RankedScores

if TYPE_CHECKING:
    from typing_extensions import Unpack

# The metric names and their directions are the catalog's (one definition, issue 15).
CLASSIFICATION_HEADLINE = CLASSIFICATION_METRICS
REGRESSION_HEADLINE = REGRESSION_METRICS
# Metrics that get a bootstrap CI (the headline ones a gate may use).
CI_METRICS = {
    "binary_classification": (
        "roc_auc",
        "pr_auc",
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "brier",
        "log_loss",
    ),
    "regression": ("rmse", "mae", "r2"),
}


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Threshold metrics (accuracy, balanced accuracy, precision, recall, F1) and ranking/probability metrics.

    Args:
        y_true: 0/1 labels.
        proba: Predicted probability of class 1.
        threshold: Probability at or above which a row is predicted 1.

    Returns:
        accuracy, precision, recall, f1, roc_auc, pr_auc (average precision), log_loss and
        brier (Brier score). ROC-AUC and PR-AUC are NaN when the labels hold one class only.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype="float64")
    y_pred = (proba >= threshold).astype(int)
    both = len(np.unique(y_true)) > 1
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        # Mean of the recall of each class: 0.5 for any constant predictor, whatever the class balance.
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)) if both else float("nan"),
        "precision": float(skm.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y_true, proba)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y_true, proba)) if both else float("nan"),
        "log_loss": float(skm.log_loss(y_true, proba, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y_true, proba, pos_label=1)),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and R²."""
    mse = float(skm.mean_squared_error(y_true, y_pred))
    return {
        "mse": mse,
        "rmse": float(skm.root_mean_squared_error(y_true, y_pred)),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
    }


def residual_summary(y_true: np.ndarray, y_pred: np.ndarray, bins: int = 20) -> dict[str, Any]:
    """Distribution of residuals (actual − predicted) for regression reports.

    Returns:
        mean, std, quantiles (5/25/50/75/95 %), max_abs, and a histogram (`edges`, `counts`).
    """
    r = np.asarray(y_true, dtype="float64") - np.asarray(y_pred, dtype="float64")
    q = np.quantile(r, [0.05, 0.25, 0.5, 0.75, 0.95])
    lo, hi = float(r.min()), float(r.max())
    if hi - lo <= 1e-9 * max(1.0, abs(lo)):  # (near-)constant residuals: numpy cannot split a zero range
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(r, bins=bins, range=(lo, hi))
    return {
        "mean": float(r.mean()),
        "std": float(r.std(ddof=1)) if len(r) > 1 else 0.0,
        "quantiles": {
            "p05": float(q[0]),
            "p25": float(q[1]),
            "p50": float(q[2]),
            "p75": float(q[3]),
            "p95": float(q[4]),
        },
        "max_abs": float(np.abs(r).max()),
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }


def _thin(n: int, max_points: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(max_points, n)).astype(int))


def roc_curve_points(y_true: np.ndarray, proba: np.ndarray, max_points: int = 101) -> dict[str, list[float]]:
    """ROC curve thinned to at most `max_points` points (for the KFP UI and reports)."""
    fpr, tpr, thr = skm.roc_curve(y_true, proba)
    idx = _thin(len(fpr), max_points)
    thr = np.where(np.isinf(thr), 1.0, thr)
    return {"fpr": fpr[idx].tolist(), "tpr": tpr[idx].tolist(), "thresholds": thr[idx].tolist()}


def pr_curve_points(y_true: np.ndarray, proba: np.ndarray, max_points: int = 101) -> dict[str, Any]:
    """Precision-recall curve thinned to at most `max_points` points, with the positive rate (chance level)."""
    precision, recall, thr = skm.precision_recall_curve(y_true, proba)
    idx = _thin(len(precision), max_points)
    thr = np.append(thr, 1.0)  # precision/recall have one more point than thresholds
    return {
        "precision": precision[idx].tolist(),
        "recall": recall[idx].tolist(),
        "thresholds": thr[idx].tolist(),
        "positive_rate": float(np.mean(y_true)),
    }


def calibration_bins(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Reliability diagram data: mean predicted vs observed positive rate per probability bin.

    Uses scikit-learn's `calibration_curve` (uniform bins); empty bins are omitted and
    each kept bin carries its row count. `ece` is the expected calibration error
    (count-weighted mean |observed − predicted|).
    """
    observed, predicted = calibration_curve(y_true, proba, n_bins=n_bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Same binning rule as calibration_curve (right-closed interior edges via searchsorted).
    which = np.searchsorted(edges[1:-1], proba)
    counts = np.bincount(which, minlength=n_bins)
    counts = counts[counts > 0]
    ece = float(np.sum(counts * np.abs(observed - predicted)) / max(counts.sum(), 1))
    return {
        "predicted": predicted.tolist(),
        "observed": observed.tolist(),
        "count": counts.astype(int).tolist(),
        "n_bins": n_bins,
        "ece": ece,
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> list[list[int]]:
    """2x2 confusion matrix, rows = actual (0, 1), columns = predicted (0, 1)."""
    return skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist()


# -- bootstrap statistics -----------------------------------------------------------------------------


def _log_loss_terms(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    eps = np.finfo(p.dtype).eps
    p = np.clip(p, eps, 1 - eps)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def classification_statistic(
    y: np.ndarray, proba: np.ndarray, threshold: float = 0.5, which: tuple[str, ...] | None = None
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The classification metrics as a bootstrap statistic `W -> {metric: value per resample}`.

    Everything that does not depend on the weights is prepared once: the confusion indicators,
    the Brier and log-loss terms, and one sort of the scores for ROC-AUC and average precision
    (`RankedScores`). Per chunk of weights the confusion counts are one matrix product, and the
    ranking metrics one gather of the weights into score order and one cumulative sum.
    Counts of integer weights are exact, so they equal the per-metric products they replace; the
    Brier and log-loss sums are the same matrix-vector products as before (float sums keep their order).
    """
    which = tuple(which or CI_METRICS["binary_classification"])
    y = np.asarray(y).astype("float64")
    p = np.asarray(proba, dtype="float64")
    pred = (p >= threshold).astype("float64")
    counted = bool({"accuracy", "balanced_accuracy", "precision", "recall", "f1"} & set(which))
    confusion_cols = np.stack([y * pred, (1 - y) * pred, y * (1 - pred)], axis=1) if counted else None
    brier_terms = (p - y) ** 2 if "brier" in which else None
    log_terms = _log_loss_terms(y, p) if "log_loss" in which else None
    ranked = RankedScores(y, p) if "roc_auc" in which or "pr_auc" in which else None

    def statistic(W: np.ndarray) -> dict[str, np.ndarray]:
        n_w = W.sum(axis=1)
        out: dict[str, np.ndarray] = {}
        with np.errstate(divide="ignore", invalid="ignore"):
            if confusion_cols is not None:
                tp, fp, fn = (W @ confusion_cols).T
                tn = n_w - tp - fp - fn
            if "accuracy" in which:
                out["accuracy"] = (tp + tn) / n_w
            if "balanced_accuracy" in which:
                out["balanced_accuracy"] = np.where(
                    (tp + fn > 0) & (tn + fp > 0), 0.5 * (tp / (tp + fn) + tn / (tn + fp)), np.nan
                )
            if "precision" in which:
                out["precision"] = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            if "recall" in which:
                out["recall"] = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
            if "f1" in which:
                out["f1"] = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
            if brier_terms is not None:
                out["brier"] = (W @ brier_terms) / n_w
            if log_terms is not None:
                out["log_loss"] = (W @ log_terms) / n_w
            if ranked is not None:
                out.update(ranked.metrics(W, which))
        return out

    return statistic


def weighted_classification(
    y: np.ndarray, proba: np.ndarray, W: np.ndarray, threshold: float = 0.5, which: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Classification metrics for each row of the weight matrix `W` (shape resamples × rows).

    Equal to scikit-learn's functions on the resampled arrays (ties in scores handled
    the same way: ROC-AUC counts a tie as one half, average precision steps at each
    distinct threshold).
    """
    return classification_statistic(y, proba, threshold, which)(W)


def regression_statistic(
    y: np.ndarray, pred: np.ndarray, which: tuple[str, ...] | None = None
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The regression metrics as a bootstrap statistic; equal to scikit-learn's on the resamples."""
    which = tuple(which or CI_METRICS["regression"])
    y = np.asarray(y, dtype="float64")
    r = y - np.asarray(pred, dtype="float64")
    r2_terms, abs_terms, y2 = r * r, np.abs(r), y * y

    def statistic(W: np.ndarray) -> dict[str, np.ndarray]:
        n_w = W.sum(axis=1)
        sse = W @ r2_terms
        out: dict[str, np.ndarray] = {}
        if "mse" in which:
            out["mse"] = sse / n_w
        if "rmse" in which:
            out["rmse"] = np.sqrt(sse / n_w)
        if "mae" in which:
            out["mae"] = (W @ abs_terms) / n_w
        if "r2" in which:
            sst = W @ y2 - (W @ y) ** 2 / n_w
            with np.errstate(divide="ignore", invalid="ignore"):
                out["r2"] = np.where(sst > 0, 1 - sse / sst, np.nan)
        return out

    return statistic


def weighted_regression(
    y: np.ndarray, pred: np.ndarray, W: np.ndarray, which: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Regression metrics for each row of the weight matrix `W`; equal to scikit-learn's on the resamples."""
    return regression_statistic(y, pred, which)(W)


def metric_statistic(
    task: str, y: np.ndarray, score: np.ndarray, threshold: float = 0.5, which: tuple[str, ...] | None = None
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """`classification_statistic` or `regression_statistic` for `task`."""
    if task == "binary_classification":
        return classification_statistic(y, score, threshold, which)
    return regression_statistic(y, score, which)


def bootstrap_intervals(
    task: str,
    y_true: np.ndarray,
    score: np.ndarray,
    threshold: float = 0.5,
    boot: Bootstrap | None = None,
    **resampling: Unpack[Resampling],
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap confidence intervals for the headline metrics.

    Args:
        task: `binary_classification` or `regression`.
        y_true: Labels (0/1) or values.
        score: Probabilities (classification) or predictions (regression).
        threshold: Classification threshold for the threshold metrics.
        boot: A shared `Bootstrap` to register on (its resamples, seed and level apply); the
            returned dict is filled when it runs.
        **resampling: Without `boot`, the own bootstrap's `n_resamples` (1000 by default), `seed`,
            `level` and `memory_budget` (`Resampling`).

    Returns:
        `{metric: {"low", "high", "level", "n_resamples"}}`; metrics that are undefined in
        more than half of the resamples (e.g. a single-class test set) are left out.
    """
    return on_bootstrap(boot, len(y_true), metric_statistic(task, y_true, score, threshold), **resampling)


def evaluate_predictions(
    task: str,
    y_true: np.ndarray,
    score: np.ndarray,
    threshold: float = 0.5,
    boot: Bootstrap | None = None,
    **resampling: Unpack[Resampling],
) -> dict[str, Any]:
    """All metrics, curves and confidence intervals for one set of predictions.

    `n_resamples` (of `resampling`) is 0 by default (no CIs) because tuning calls this once per
    trial and needs only the point metrics; the evaluate step asks for 1000, on its shared `boot`
    (then `confidence_intervals` is filled when `boot` runs).

    Returns:
        For classification: `metrics`, `confidence_intervals`, `roc`, `pr`, `calibration`,
        `confusion_matrix`. For regression: `metrics`, `confidence_intervals`, `residuals`.
    """
    y_true = np.asarray(y_true)
    score = np.asarray(score, dtype="float64")
    cis = (
        bootstrap_intervals(task, y_true, score, threshold, boot, **resampling)
        if resampling.get("n_resamples", 0) > 0 or boot is not None
        else {}
    )
    if task == "binary_classification":
        y_pred = (score >= threshold).astype(int)
        doc: dict[str, Any] = {
            "metrics": classification_metrics(y_true, score, threshold),
            "confidence_intervals": cis,
            "confusion_matrix": confusion(y_true, y_pred),
            "calibration": calibration_bins(y_true, score),
        }
        if len(np.unique(y_true)) > 1:
            doc["roc"] = roc_curve_points(y_true, score)
            doc["pr"] = pr_curve_points(y_true, score)
        return doc
    return {
        "metrics": regression_metrics(y_true, score),
        "confidence_intervals": cis,
        "residuals": residual_summary(y_true, score),
    }
