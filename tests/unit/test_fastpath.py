"""The server's fast path scores exactly like batch scoring (issue 18 item 4).

`serving.fastpath.Scorer` builds the float row from the request and calls `inplace_predict`;
`TrainedModel.score` builds a pandas frame through `FeatureSpec.transform`. Over mixed numeric,
categorical, missing and unseen values, and for a model that stopped early (its best iteration),
a saved-and-loaded model (as the server has it) gives bitwise equal scores both ways.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from civicml.data.demo import CATEGORICAL, NUMERIC, generate_benefits
from civicml.modeling.estimators import build_params, fit_model
from civicml.modeling.persistence import load_model, save_model
from civicml.modeling.preprocessing import FeatureSpec
from civicml.serving.fastpath import RowEncoder, Scorer

TARGET = "needs_review"


def _records(n: int, seed: int) -> list[dict]:
    """Demo rows with holes: missing numerics and categoricals, unseen categories, numbers as text."""
    df = generate_benefits(n, seed=seed)[NUMERIC + CATEGORICAL]
    recs = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    rng = np.random.default_rng(seed)
    for rec in recs:
        for col in NUMERIC + CATEGORICAL:
            u = rng.random()
            if u < 0.08:
                rec[col] = None
            elif u < 0.12 and col in CATEGORICAL:
                rec[col] = "never-seen-in-training"
            elif u < 0.14 and col in NUMERIC:
                rec[col] = float("nan")
    recs[0] = {c: None for c in NUMERIC + CATEGORICAL}  # everything missing
    recs[1][NUMERIC[0]] = 3  # an integer where the training data had floats
    return recs


def _model(tmp_path, task: str, early: bool):
    train = generate_benefits(1500, seed=1)
    if task == "regression":
        train[TARGET] = train["claim_amount"] * 0.01 + train["prior_claims"]
        numeric = [c for c in NUMERIC if c != "claim_amount"]
    else:
        numeric = NUMERIC
    spec = FeatureSpec.fit(train, TARGET, task, numeric, CATEGORICAL)
    params = build_params("xgboost", {"n_estimators": 60, "max_depth": 4}, {})
    valid = None
    if early:
        params["early_stopping_rounds"] = 3
        valid = generate_benefits(500, seed=2)
        if task == "regression":
            valid[TARGET] = valid["claim_amount"] * 0.01 + valid["prior_claims"]
    model = fit_model("xgboost", spec, params, train, 42, 2, valid=valid)
    save_model(model, tmp_path / "m")
    return load_model(tmp_path / "m")


@pytest.mark.parametrize(
    "task,early", [("binary_classification", False), ("binary_classification", True), ("regression", True)]
)
def test_fast_path_equals_batch_scoring(tmp_path, task, early):
    model = _model(tmp_path, task, early)
    if early:
        assert model.estimator.get_booster().attr("best_iteration") is not None
    recs = _records(400, seed=7)
    frame = pd.DataFrame.from_records(recs, columns=model.spec.features)
    batch = model.score(frame)
    fast = Scorer(model)
    got = fast.score(recs)
    assert got.dtype == np.float64 and got.shape == (len(recs),)
    np.testing.assert_array_equal(got, batch)  # bitwise: same float32 inputs, same trees, same iterations
    # One row at a time (the server's usual request) gives the same numbers as the batch.
    np.testing.assert_array_equal(np.concatenate([fast.score([r]) for r in recs[:50]]), batch[:50])
    if task == "binary_classification":
        np.testing.assert_array_equal(fast.labels(got), model.predict(frame))


def test_encoder_codes_follow_the_training_categories():
    spec = FeatureSpec(target="y", task="regression", numeric=["a"], categorical={"c": ["1", "x", "y"]})
    enc = RowEncoder(spec)
    x = enc.encode(
        [{"a": 2, "c": "y"}, {"a": None, "c": 1}, {"a": "3.5", "c": "z"}, {"c": None}, {"a": "n/a", "c": "x"}]
    )
    want = spec.transform(
        pd.DataFrame({"a": [2, None, "3.5", None, "n/a"], "c": ["y", 1, "z", None, "x"]}, dtype=object)
    )
    expected = np.column_stack([want["a"].to_numpy(dtype="float64"), want["c"].cat.codes.replace(-1, np.nan)])
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("early", [False, True])
def test_dense_predict_is_inplace_predict(tmp_path, early):
    """The direct C call gives inplace_predict's numbers for one row and for many, missing values included."""
    model = _model(tmp_path, "binary_classification", early)
    fast = Scorer(model)
    assert fast.predict is not None
    x = fast.encoder.encode(_records(300, seed=3))
    for rows in (x[:1], x[1:2], x):
        want = fast.booster.inplace_predict(rows, iteration_range=fast.iteration_range, validate_features=False)
        got = fast.predict(rows)
        assert got.dtype == np.float64 and got.shape == (len(rows),)
        np.testing.assert_array_equal(got, np.asarray(want, dtype="float64"))
    before = fast.predict(x[:1])
    fast.predict(x[1:])  # the library reuses its output buffer: earlier answers must be copies
    np.testing.assert_array_equal(before, fast.predict(x[:1]))


def test_dense_predict_reports_the_library_error(tmp_path):
    from xgboost.core import XGBoostError

    fast = Scorer(_model(tmp_path, "binary_classification", False))
    with pytest.raises(XGBoostError):
        fast.predict(np.zeros((1, fast.encoder.width + 3)))


@pytest.mark.parametrize("fault", ["raises", "disagrees"])
def test_a_direct_call_that_fails_its_check_falls_back_to_inplace_predict(tmp_path, monkeypatch, fault):
    from civicml.serving import fastpath

    model = _model(tmp_path, "binary_classification", early=False)

    def broken(self, x):
        if fault == "raises":
            raise AttributeError("module 'xgboost.core' has no attribute '_LIB'")
        return np.full(len(x), 0.123)

    monkeypatch.setattr(fastpath.DensePredict, "__call__", broken)
    scorer = Scorer(model)
    assert scorer.predict is not None and not isinstance(scorer.predict, fastpath.DensePredict)
    recs = _records(50, seed=5)
    frame = pd.DataFrame.from_records(recs, columns=model.spec.features)
    assert np.array_equal(scorer.score(recs), np.asarray(model.score(frame), dtype="float64"))
