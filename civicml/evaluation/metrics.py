"""Headline metrics, computed with scikit-learn's metric functions."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

CLASSIFICATION_HEADLINE = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_HEADLINE = ("mse", "rmse", "mae", "r2")


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (at `threshold`) and ROC-AUC."""
    y_pred = (proba >= threshold).astype(int)
    return {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(skm.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(y_true, proba)) if len(np.unique(y_true)) > 1 else float("nan"),
    }


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE and R²."""
    mse = float(skm.mean_squared_error(y_true, y_pred))
    return {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
    }


def roc_curve_points(y_true: np.ndarray, proba: np.ndarray, max_points: int = 101) -> dict[str, list[float]]:
    """ROC curve thinned to at most `max_points` points (for the KFP UI and reports)."""
    fpr, tpr, thr = skm.roc_curve(y_true, proba)
    idx = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).astype(int))
    thr = np.where(np.isinf(thr), 1.0, thr)
    return {"fpr": fpr[idx].tolist(), "tpr": tpr[idx].tolist(), "thresholds": thr[idx].tolist()}


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> list[list[int]]:
    """2x2 confusion matrix, rows = actual (0, 1), columns = predicted (0, 1)."""
    return skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist()


def evaluate_predictions(task: str, y_true: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """All metrics and curves for one set of predictions."""
    if task == "binary_classification":
        y_pred = (score >= threshold).astype(int)
        return {
            "metrics": classification_metrics(y_true, score, threshold),
            "roc": roc_curve_points(y_true, score),
            "confusion_matrix": confusion(y_true, y_pred),
        }
    return {"metrics": regression_metrics(y_true, score)}
