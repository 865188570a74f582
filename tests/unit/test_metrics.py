"""Metrics equal scikit-learn's; the vectorised bootstrap equals scikit-learn on each materialised resample."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from civicml.evaluation.bootstrap import resample_weights
from civicml.evaluation.metrics import (
    bootstrap_intervals,
    calibration_bins,
    classification_metrics,
    evaluate_predictions,
    pr_curve_points,
    regression_metrics,
    residual_summary,
    weighted_classification,
    weighted_regression,
)


@pytest.fixture
def clf_data():
    rng = np.random.default_rng(3)
    n = 3000
    y = rng.integers(0, 2, n)
    # Rounded scores create many ties, which is where hand-written AUC/AP usually goes wrong.
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1).round(2)
    return y, p


def test_classification_metrics_equal_sklearn(clf_data):
    y, p = clf_data
    m = classification_metrics(y, p, threshold=0.5)
    pred = (p >= 0.5).astype(int)
    assert m["accuracy"] == skm.accuracy_score(y, pred)
    assert m["precision"] == skm.precision_score(y, pred)
    assert m["recall"] == skm.recall_score(y, pred)
    assert m["f1"] == skm.f1_score(y, pred)
    assert m["roc_auc"] == skm.roc_auc_score(y, p)
    assert m["pr_auc"] == skm.average_precision_score(y, p)
    assert m["log_loss"] == skm.log_loss(y, p)
    assert m["brier"] == skm.brier_score_loss(y, p)


def test_weighted_formulas_equal_sklearn_on_each_resample(clf_data):
    y, p = clf_data
    n = len(y)
    W = resample_weights(n, 4, np.random.default_rng(11))
    idx = np.random.default_rng(11).integers(0, n, size=(4, n))  # the same draws, materialised
    got = weighted_classification(y, p, W)
    for b in range(4):
        want = classification_metrics(y[idx[b]], p[idx[b]])
        for name, values in got.items():
            assert values[b] == pytest.approx(want[name], abs=1e-12), name
    # Unit weights reproduce the point estimates.
    ones = weighted_classification(y, p, np.ones((1, n)))
    for name, values in ones.items():
        assert values[0] == pytest.approx(classification_metrics(y, p)[name], abs=1e-12)


def test_weighted_regression_equals_sklearn():
    rng = np.random.default_rng(5)
    y = rng.normal(size=800)
    pred = y + rng.normal(scale=0.4, size=800)
    W = resample_weights(800, 3, np.random.default_rng(2))
    idx = np.random.default_rng(2).integers(0, 800, size=(3, 800))
    got = weighted_regression(y, pred, W, which=("mse", "rmse", "mae", "r2"))
    for b in range(3):
        want = regression_metrics(y[idx[b]], pred[idx[b]])
        for name in ("mse", "rmse", "mae", "r2"):
            assert got[name][b] == pytest.approx(want[name], rel=1e-10), name
    point = regression_metrics(y, pred)
    assert point["rmse"] == skm.root_mean_squared_error(y, pred)
    assert point["r2"] == skm.r2_score(y, pred)


def test_bootstrap_is_seeded_and_brackets_the_estimate(clf_data):
    y, p = clf_data
    a = bootstrap_intervals("binary_classification", y, p, n_resamples=300, seed=1)
    b = bootstrap_intervals("binary_classification", y, p, n_resamples=300, seed=1)
    c = bootstrap_intervals("binary_classification", y, p, n_resamples=300, seed=2)
    assert a == b
    assert a["roc_auc"] != c["roc_auc"]
    point = classification_metrics(y, p)
    for name, ci in a.items():
        assert ci["low"] <= point[name] <= ci["high"], name
        assert ci["level"] == 0.95 and ci["n_resamples"] == 300
    # Roughly the textbook width for AUC on 3000 rows (±~0.02), i.e. not degenerate.
    assert 0.005 < a["roc_auc"]["high"] - a["roc_auc"]["low"] < 0.06


def test_single_class_labels_leave_auc_undefined_without_crashing():
    y = np.zeros(200, dtype=int)
    p = np.linspace(0, 1, 200)
    doc = evaluate_predictions("binary_classification", y, p, n_resamples=50)
    assert math.isnan(doc["metrics"]["roc_auc"])
    assert "roc_auc" not in doc["confidence_intervals"]
    assert "accuracy" in doc["confidence_intervals"]
    assert "roc" not in doc


def test_calibration_bins_match_sklearn(clf_data):
    y, p = clf_data
    cal = calibration_bins(y, p, n_bins=10)
    obs, pred = calibration_curve(y, p, n_bins=10)
    np.testing.assert_allclose(cal["observed"], obs)
    np.testing.assert_allclose(cal["predicted"], pred)
    assert sum(cal["count"]) == len(y)
    assert 0 <= cal["ece"] <= 1


def test_pr_curve_and_residuals(clf_data):
    y, p = clf_data
    pr = pr_curve_points(y, p, max_points=50)
    assert len(pr["precision"]) <= 50 and pr["recall"][0] == 1.0 and pr["recall"][-1] == 0.0
    assert pr["positive_rate"] == pytest.approx(y.mean())
    r = residual_summary(np.array([1.0, 2.0, 3.0, 10.0]), np.array([1.0, 1.0, 1.0, 1.0]))
    assert r["mean"] == pytest.approx(np.mean([0, 1, 2, 9]))
    assert r["quantiles"]["p50"] == pytest.approx(1.5)
    assert r["max_abs"] == 9.0 and sum(r["histogram"]["counts"]) == 4


def test_evaluation_doc_holds_plot_data(clf_data):
    y, p = clf_data
    doc = evaluate_predictions("binary_classification", y, p, n_resamples=100)
    assert {"metrics", "confidence_intervals", "roc", "pr", "calibration", "confusion_matrix"} <= set(doc)
    assert np.array(doc["confusion_matrix"]).sum() == len(y)
    reg = evaluate_predictions("regression", p, p + 0.1, n_resamples=100)
    assert {"metrics", "confidence_intervals", "residuals"} <= set(reg)
    assert reg["metrics"]["mae"] == pytest.approx(0.1)


def test_memory_budget_changes_the_chunks_not_the_intervals():
    from civicml.evaluation.bootstrap import BYTES_PER_CELL

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 3000)
    p = np.clip(0.3 * y + 0.7 * rng.random(3000), 0, 1)
    whole = bootstrap_intervals("binary_classification", y, p, n_resamples=200, seed=9)
    chunked = bootstrap_intervals(
        "binary_classification", y, p, n_resamples=200, seed=9, memory_budget=3000 * 7 * BYTES_PER_CELL
    )  # 7 resamples a chunk
    assert set(chunked) == set(whole)
    for name, ci in whole.items():
        if name in ("brier", "log_loss"):
            # Float sums: BLAS adds the rows past its last block of 4 another way (see bootstrap.py).
            assert chunked[name]["low"] == pytest.approx(ci["low"], rel=1e-12)
            assert chunked[name]["high"] == pytest.approx(ci["high"], rel=1e-12)
        else:  # counts and ranks of integer weights are exact whatever the chunks
            assert chunked[name] == ci, name
