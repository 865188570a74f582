"""Explanations: TreeSHAP for XGBoost, exact linear terms for logistic regression, occlusion for forests."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from civicml.data.demo import CATEGORICAL, NUMERIC, TARGET, generate_benefits
from civicml.evaluation.explain import contributions, global_importance, top_contributions
from civicml.modeling.estimators import fit_model
from civicml.modeling.preprocessing import FeatureSpec

PARAMS = {
    "xgboost": {"n_estimators": 30, "max_depth": 3},
    "logistic_regression": {"C": 1.0, "max_iter": 500},
    "random_forest": {"n_estimators": 20, "max_depth": 6},
}


@pytest.fixture(scope="module")
def data():
    df = generate_benefits(rows=1500, seed=3)
    return df.iloc[:1200], df.iloc[1200:]


def _fit(family, train):
    spec = FeatureSpec.fit(train, TARGET, "binary_classification", NUMERIC, CATEGORICAL)
    return fit_model(family, spec, PARAMS[family], train, seed=1, n_threads=1)


@pytest.fixture(scope="module")
def models(data):
    train, _ = data
    return {f: _fit(f, train) for f in PARAMS}


def _logit(p):
    return np.log(p / (1 - p))


def test_xgboost_treeshap_contributions_sum_to_the_margin(models, data):
    model = models["xgboost"]
    rows = data[1].iloc[:50]
    c = contributions(model, rows)
    assert c.shape == (50, len(model.spec.features))
    dm = xgb.DMatrix(model.spec.transform(rows), enable_categorical=True)
    margin = model.estimator.get_booster().predict(dm, output_margin=True)
    bias = model.estimator.get_booster().predict(dm, pred_contribs=True)[:, -1]
    np.testing.assert_allclose(c.sum(axis=1) + bias, margin, atol=1e-4)
    np.testing.assert_allclose(margin, _logit(model.predict_proba(rows)), atol=1e-4)


def test_global_importance_xgboost_and_permutation(models, data):
    test = data[1]
    imp = global_importance(models["xgboost"], test, seed=0)
    assert "TreeSHAP" in imp["method"]
    vals = [f["importance"] for f in imp["features"]]
    assert vals == sorted(vals, reverse=True)
    assert {f["feature"] for f in imp["features"]} == set(models["xgboost"].spec.features)
    # The label depends strongly on documents_missing and inconsistency_score (demo generator).
    assert {"documents_missing", "inconsistency_score"} & {f["feature"] for f in imp["features"][:3]}
    perm = global_importance(models["logistic_regression"], test, seed=0, n_repeats=2)
    assert "permutation" in perm["method"] and len(perm["features"]) == len(models["logistic_regression"].spec.features)
    assert perm["features"][0]["feature"] in {"documents_missing", "inconsistency_score"}


def test_top_contributions_shape_and_order(models, data):
    row = data[1].iloc[[3]]
    for family, model in models.items():
        top = top_contributions(model, row, k=4)
        assert len(top) == 4, family
        mags = [abs(t["contribution"]) for t in top]
        assert mags == sorted(mags, reverse=True), family
        for t in top:
            assert t["value"] == row.iloc[0][t["feature"]] or (t["value"] is None), family


def test_logistic_regression_contributions_are_exact_linear_terms(models, data):
    model = models["logistic_regression"]
    rows = data[1].iloc[:20]
    c = contributions(model, rows)
    decision = model.estimator.decision_function(model.spec.transform(rows))
    intercept = model.estimator.named_steps["model"].intercept_[0]
    np.testing.assert_allclose(c.sum(axis=1) + intercept, decision, atol=1e-9)


def test_random_forest_occlusion_is_change_in_log_odds(models, data):
    model = models["random_forest"]
    row = data[1].iloc[[0]]
    c = contributions(model, row)[0]
    j = model.spec.features.index("documents_missing")
    mean = dict(
        zip(
            model.spec.numeric, model.estimator.named_steps["pre"].named_transformers_["num"].named_steps["scale"].mean_
        )
    )["documents_missing"]
    occluded = row.copy()
    occluded["documents_missing"] = mean
    p_full = np.clip(model.predict_proba(row)[0], 1e-12, 1 - 1e-12)
    p_occ = np.clip(model.predict_proba(occluded)[0], 1e-12, 1 - 1e-12)
    assert c[j] == pytest.approx(_logit(p_full) - _logit(p_occ), abs=1e-9)


def test_bad_input_is_refused_clearly(models, data):
    with pytest.raises(ValueError, match="one prediction"):
        top_contributions(models["xgboost"], data[1].iloc[:2])
    with pytest.raises(ValueError, match="missing feature column"):
        top_contributions(models["xgboost"], data[1].iloc[[0]].drop(columns=["claim_amount"]))
