"""Fairness values equal fairlearn's; small groups are suppressed and flagged, never dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from civicml.config import ColumnSpec, DataConfig
from civicml.data.contract import feature_lists
from civicml.data.errors import DataError
from civicml.evaluation.fairness import fairness_report


@pytest.fixture
def preds():
    rng = np.random.default_rng(0)
    n = 2000
    region = rng.choice(["North", "South", "East", "Tiny"], size=n, p=[0.4, 0.35, 0.245, 0.005])
    y = rng.integers(0, 2, n)
    # Group East is selected far more often: a disparity the measures must see.
    p_sel = np.where(region == "East", 0.7, 0.3)
    y_pred = (rng.random(n) < p_sel).astype(int)
    sex = rng.choice(["F", "M"], size=n)
    return y, y_pred, pd.DataFrame({"region": region, "sex": sex})


def test_values_equal_fairlearn_when_no_group_is_suppressed(preds):
    y, y_pred, sens = preds
    rep = fairness_report(y, y_pred, sens[["sex"]], min_group_count=30)["sex"]
    g = sens["sex"].to_numpy()
    assert rep["suppressed_groups"] == []
    assert rep["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, y_pred, sensitive_features=g)
    )
    assert rep["demographic_parity_ratio"] == pytest.approx(demographic_parity_ratio(y, y_pred, sensitive_features=g))
    assert rep["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(y, y_pred, sensitive_features=g))
    mf = MetricFrame(
        metrics={"sr": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y,
        y_pred=y_pred,
        sensitive_features=g,
    )
    for group in ("F", "M"):
        assert rep["groups"][group]["selection_rate"] == pytest.approx(mf.by_group.loc[group, "sr"])
        assert rep["groups"][group]["tpr"] == pytest.approx(mf.by_group.loc[group, "tpr"])
        assert rep["groups"][group]["fpr"] == pytest.approx(mf.by_group.loc[group, "fpr"])
        assert rep["groups"][group]["count"] == int((g == group).sum())


def test_bootstrap_disparities_equal_fairlearn_and_bracket_the_estimate(preds):
    from civicml.evaluation.fairness import weighted_disparities

    y, y_pred, sens = preds
    g = sens["sex"].to_numpy()
    unit = weighted_disparities(y, y_pred, g, np.ones((1, len(y))))
    assert unit["demographic_parity_ratio"][0] == pytest.approx(
        demographic_parity_ratio(y, y_pred, sensitive_features=g)
    )
    assert unit["equalized_odds_difference"][0] == pytest.approx(
        equalized_odds_difference(y, y_pred, sensitive_features=g)
    )
    rep = fairness_report(y, y_pred, sens[["region"]], n_resamples=200, seed=1)["region"]
    ci = rep["confidence_intervals"]["demographic_parity_ratio"]
    assert ci["low"] <= rep["demographic_parity_ratio"] <= ci["high"] and ci["level"] == 0.95
    assert rep == fairness_report(y, y_pred, sens[["region"]], n_resamples=200, seed=1)["region"]


def test_small_group_is_suppressed_flagged_and_excluded_from_headline_disparity(preds):
    y, y_pred, sens = preds
    rep = fairness_report(y, y_pred, sens[["region"]], min_group_count=30)["region"]
    tiny = rep["groups"]["Tiny"]
    assert tiny["suppressed"] is True and tiny["count"] == int((sens["region"] == "Tiny").sum()) > 0
    assert tiny["selection_rate"] is None and tiny["tpr"] is None
    assert rep["suppressed_groups"] == ["Tiny"]
    keep = sens["region"].to_numpy() != "Tiny"
    g = sens["region"].to_numpy()
    assert rep["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y[keep], y_pred[keep], sensitive_features=g[keep])
    )
    assert rep["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y[keep], y_pred[keep], sensitive_features=g[keep])
    )
    assert rep["demographic_parity_ratio_all_groups"] == pytest.approx(
        demographic_parity_ratio(y, y_pred, sensitive_features=g)
    )
    assert rep["demographic_parity_ratio"] < 0.6  # East's bias is visible


def test_missing_values_form_their_own_group_and_one_group_is_not_assessable():
    y = np.array([0, 1] * 50)
    y_pred = np.array([1, 0] * 50)
    sens = pd.DataFrame({"a": [None] * 40 + ["x"] * 60, "b": ["x"] * 95 + ["y"] * 5})
    rep = fairness_report(y, y_pred, sens, min_group_count=30)
    assert set(rep["a"]["groups"]) == {"<missing>", "x"}
    assert rep["b"]["reportable_groups"] == ["x"]
    assert rep["b"]["assessable"] is False and rep["b"]["demographic_parity_ratio"] is None


CONTRACT = (
    [ColumnSpec(name=n, kind="numeric") for n in ("income", "claims")]
    + [ColumnSpec(name=n, kind="categorical") for n in ("region", "sex", "channel", "name")]
    + [ColumnSpec(name="target", kind="numeric")]
)


def test_sensitive_attributes_are_not_features_unless_allowed():
    cfg = DataConfig(target="target", sensitive_attributes=["region", "sex"], pii_columns=["name"])
    numeric, categorical = feature_lists(CONTRACT, cfg)
    assert numeric == ["income", "claims"] and categorical == ["channel"]
    allowed = DataConfig(
        target="target", sensitive_attributes=["region", "sex"], pii_columns=["name"], allow_sensitive_as_features=True
    )
    assert set(feature_lists(CONTRACT, allowed)[1]) == {"region", "sex", "channel"}
    explicit = DataConfig(target="target", sensitive_attributes=["region"], categorical_features=["region"])
    with pytest.raises(DataError, match="sensitive attribute"):
        feature_lists(CONTRACT, explicit)


def test_regression_fairness_matches_fairlearn_metricframe():
    """Issue 13 item 2: error and mean-prediction parity by group for regression, via fairlearn."""
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    from civicml.evaluation.fairness import regression_fairness_report

    rng = np.random.default_rng(3)
    n = 900
    groups = rng.choice(["a", "b", "c", "tiny"], size=n, p=[0.5, 0.3, 0.18, 0.02])
    y = rng.normal(10, 2, size=n)
    pred = y + rng.normal(0, 1, size=n) + np.where(groups == "b", 1.5, 0.0)
    rep = regression_fairness_report(y, pred, pd.DataFrame({"g": groups}), min_group_count=30)["g"]
    keep = groups != "tiny"
    assert rep["suppressed_groups"] == ["tiny"] and rep["groups"]["tiny"]["mae"] is None
    mf = MetricFrame(
        metrics={"mae": mean_absolute_error, "mse": mean_squared_error},
        y_true=y[keep],
        y_pred=pred[keep],
        sensitive_features=groups[keep],
    )
    for g in ("a", "b", "c"):
        assert rep["groups"][g]["mae"] == pytest.approx(mf.by_group.loc[g, "mae"])
        assert rep["groups"][g]["mse"] == pytest.approx(mf.by_group.loc[g, "mse"])
        assert rep["groups"][g]["mean_prediction"] == pytest.approx(pred[groups == g].mean())
    assert rep["mae_ratio"] == pytest.approx(mf.ratio(method="between_groups")["mae"])
    assert rep["mse_difference"] == pytest.approx(mf.difference(method="between_groups")["mse"])
    means = [pred[groups == g].mean() for g in ("a", "b", "c")]
    assert rep["mean_prediction_difference"] == pytest.approx(max(means) - min(means))
    assert rep["mae_ratio"] < 0.8  # group b's errors are larger: the disparity is visible


def test_rates_from_weighted_cells_equal_fairlearn_on_every_row_exactly(preds):
    """The report runs fairlearn on one weighted row per (group, label, prediction): same values, bit for bit."""
    from fairlearn.metrics import count
    from sklearn.metrics import precision_score

    y, y_pred, sens = preds
    rep = fairness_report(y, y_pred, sens, min_group_count=1)
    for attr in ("region", "sex"):
        g = sens[attr].to_numpy()
        mf = MetricFrame(
            metrics={
                "count": count,
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "precision": lambda a, b: precision_score(a, b, zero_division=0),
            },
            y_true=y,
            y_pred=y_pred,
            sensitive_features=g,
        )
        for group, row in mf.by_group.iterrows():
            got = rep[attr]["groups"][group]
            assert got["count"] == row["count"]
            assert [got[k] for k in ("selection_rate", "tpr", "fpr", "precision")] == [
                float(row[k]) for k in ("selection_rate", "tpr", "fpr", "precision")
            ]
        assert rep[attr]["demographic_parity_difference"] == demographic_parity_difference(
            y, y_pred, sensitive_features=g
        )
        assert rep[attr]["demographic_parity_ratio"] == demographic_parity_ratio(y, y_pred, sensitive_features=g)
        assert rep[attr]["equalized_odds_difference"] == equalized_odds_difference(y, y_pred, sensitive_features=g)
