"""No-skill baseline, balanced accuracy and the validation-chosen threshold (issue 13 item 3)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.dummy import DummyClassifier

from civicml.evaluation.baseline import no_skill_baseline
from civicml.evaluation.bootstrap import resample_weights
from civicml.evaluation.metrics import classification_metrics, weighted_classification
from civicml.evaluation.threshold import ThresholdError, choose_threshold


def _data(n=2000, seed=0, prevalence=0.7):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    score = np.clip(0.55 * y + rng.normal(0.3, 0.25, n), 0, 1)
    return y, score


def test_baseline_is_sklearn_dummy_and_margins_have_paired_intervals():
    y_train, _ = _data(seed=1)
    y, score = _data(seed=2)
    out = no_skill_baseline("binary_classification", y_train, y, score, 0.5, n_resamples=300, seed=0)
    dummy = DummyClassifier(strategy="prior").fit(np.zeros((len(y_train), 1)), y_train)
    assert out["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(y, dummy.predict(np.zeros((len(y), 1)))))
    assert out["metrics"]["balanced_accuracy"] == pytest.approx(0.5)
    bal = out["margins"]["balanced_accuracy"]
    assert bal["model"] == pytest.approx(skm.balanced_accuracy_score(y, (score >= 0.5).astype(int)))
    assert bal["margin"] == pytest.approx(bal["model"] - 0.5) and bal["low"] < bal["margin"] < bal["high"]
    assert "majority class 1" in out["strategy"] and out["fitted_on"] == "train"
    # A near-constant classifier: high accuracy, almost no balanced-accuracy margin.
    lazy = np.where(np.random.default_rng(3).random(len(y)) < 0.97, 0.9, 0.1)
    lazy_out = no_skill_baseline("binary_classification", y_train, y, lazy, 0.5, n_resamples=300)
    assert lazy_out["margins"]["accuracy"]["model"] > 0.65
    assert lazy_out["margins"]["balanced_accuracy"]["low"] < 0.05
    reg = no_skill_baseline("regression", np.arange(10.0), np.array([4.0, 5.0, 6.0]), np.array([4.5, 5.0, 5.5]))
    assert reg["metrics"]["rmse"] == pytest.approx(np.sqrt(np.mean((np.array([4.0, 5.0, 6.0]) - 4.5) ** 2)))
    assert reg["margins"]["rmse"]["margin"] == pytest.approx(reg["metrics"]["rmse"] - reg["margins"]["rmse"]["model"])


def test_weighted_balanced_accuracy_equals_sklearn_on_each_resample():
    y, score = _data(n=300)
    W = resample_weights(len(y), 20, np.random.default_rng(0))
    got = weighted_classification(y, score, W, 0.4, which=("balanced_accuracy",))["balanced_accuracy"]
    for i in range(20):
        idx = np.repeat(np.arange(len(y)), W[i].astype(int))
        assert got[i] == pytest.approx(skm.balanced_accuracy_score(y[idx], (score[idx] >= 0.4).astype(int)))
    assert classification_metrics(y, score)["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(y, (score >= 0.5).astype(int))
    )


def test_threshold_rules_match_sklearn_curves():
    y, score = _data()
    assert choose_threshold(y, score, "fixed")["threshold"] == 0.5
    assert choose_threshold(y, score, "fixed", 0.3)["threshold"] == 0.3
    f1 = choose_threshold(y, score, "max_f1")
    grid = np.unique(score)
    best = max(grid, key=lambda t: skm.f1_score(y, (score >= t).astype(int)))
    assert skm.f1_score(y, (score >= f1["threshold"]).astype(int)) == pytest.approx(
        skm.f1_score(y, (score >= best).astype(int))
    )
    j = choose_threshold(y, score, "max_youden")
    youden = lambda t: skm.recall_score(y, score >= t) - np.mean(score[y == 0] >= t)  # noqa: E731
    assert youden(j["threshold"]) == pytest.approx(max(youden(t) for t in grid))
    p = choose_threshold(y, score, "target_precision", 0.95)
    assert p["precision"] >= 0.95 and p["threshold"] == min(
        t for t in grid if skm.precision_score(y, score >= t) >= 0.95
    )
    r = choose_threshold(y, score, "target_recall", 0.9)
    assert r["recall"] >= 0.9 and r["threshold"] == max(t for t in grid if skm.recall_score(y, score >= t) >= 0.9)
    with pytest.raises(ThresholdError, match="both classes"):
        choose_threshold(np.ones(10), np.linspace(0, 1, 10), "max_f1")
    with pytest.raises(ThresholdError, match="no threshold reaches precision"):
        choose_threshold(np.array([0, 1] * 5), np.full(10, 0.5), "target_precision", 0.99)


def test_chosen_threshold_is_saved_with_the_model_and_used_to_label(tmp_path):
    from civicml.data.demo import CATEGORICAL, NUMERIC, TARGET, generate_benefits
    from civicml.modeling.estimators import fit_model
    from civicml.modeling.persistence import load_model, save_model
    from civicml.modeling.preprocessing import FeatureSpec

    df = generate_benefits(rows=400, seed=2)
    spec = FeatureSpec.fit(df, TARGET, "binary_classification", NUMERIC, CATEGORICAL)
    model = fit_model("logistic_regression", spec, {}, df, 1, 1)
    model.threshold = 0.2
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.threshold == 0.2
    assert (loaded.predict(df) == (loaded.score(df) >= 0.2)).all()
