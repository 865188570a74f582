"""Behavioural tests of the trained model (issue 15): what it must and must not respond to.

The model is trained as the pipeline trains it: the repository's civicml.yaml (XGBoost, its fixed
params and seed), features chosen by `civicml.data.contract.feature_lists` from an inferred contract,
on the demo generator's table. The expectations come from the generator itself
(`civicml.data.demo._block`): its label logit rises with missing documents, the inconsistency score,
prior claims and the claim amount, falls with income, and adds +0.5 for disability claims,
+0.4 for the self-employed and +0.3 for mail applications; `bias` adds 2.5 to the logit in the
East region, which the model can learn only through the proxy `postcode_area`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from civicml.config import RunConfig, load_config
from civicml.data import demo
from civicml.data.contract import feature_lists, infer_contract
from civicml.modeling.estimators import TrainedModel, build_params, fit_model
from civicml.modeling.preprocessing import FeatureSpec

ROOT = Path(__file__).resolve().parents[2]


def _train(cfg: RunConfig, df: pd.DataFrame) -> TrainedModel:
    numeric, categorical = feature_lists(infer_contract(df, cfg.data), cfg.data)
    spec = FeatureSpec.fit(df, target=cfg.data.target, task=cfg.task, numeric=numeric, categorical=categorical)
    params = build_params(cfg.model.family, cfg.model.params, {})
    return fit_model(cfg.model.family, spec, params, df, cfg.model.seed, cfg.model.n_threads)


@pytest.fixture(scope="module")
def cfg() -> RunConfig:
    return load_config(ROOT / "civicml.yaml")


@pytest.fixture(scope="module")
def biased_table() -> pd.DataFrame:
    return demo.generate_benefits(rows=6000, bias=1.0, seed=11)


@pytest.fixture(scope="module")
def model(cfg, biased_table) -> TrainedModel:
    return _train(cfg, biased_table)


@pytest.fixture(scope="module")
def probe() -> pd.DataFrame:
    """Fresh rows (another seed) to perturb."""
    return demo.generate_benefits(rows=800, bias=1.0, seed=12)


def _scrambled(df: pd.DataFrame, columns: list[str], seed: int = 0) -> pd.DataFrame:
    """`df` with each of `columns` given other values of its own vocabulary (every row changes)."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    for col in columns:
        values = sorted(df[col].astype(str).unique())
        shift = rng.integers(1, len(values), len(df)) if len(values) > 1 else np.zeros(len(df), dtype=int)
        idx = np.array([values.index(v) for v in df[col].astype(str)])
        out[col] = np.array(values, dtype=object)[(idx + shift) % len(values)]
    return out


def test_sensitive_attributes_and_pii_are_not_features(cfg, model):
    features = set(model.spec.numeric) | set(model.spec.categorical)
    assert features and not features & (set(cfg.data.sensitive_attributes) | set(cfg.data.pii_columns))


def test_predictions_do_not_change_with_sensitive_attributes_or_pii(cfg, model, probe):
    changed = _scrambled(probe, [*cfg.data.sensitive_attributes, *cfg.data.pii_columns])
    assert (changed[cfg.data.sensitive_attributes] != probe[cfg.data.sensitive_attributes]).all(axis=None)
    np.testing.assert_array_equal(model.predict_proba(changed), model.predict_proba(probe))


def test_the_invariance_check_catches_a_model_that_uses_them(cfg, biased_table, probe):
    # The same check on a model allowed to use the sensitive attributes must see them move predictions,
    # or the test above could not fail.
    leaky_cfg = load_config(ROOT / "civicml.yaml", {"data.allow_sensitive_as_features": True})
    leaky = _train(leaky_cfg, biased_table)
    assert "region" in leaky.spec.categorical
    moved = np.abs(leaky.predict_proba(_scrambled(probe, cfg.data.sensitive_attributes)) - leaky.predict_proba(probe))
    assert moved.max() > 0.05


@pytest.mark.parametrize(
    "column,low,high,direction",
    [
        ("documents_missing", 0, 3, +1),
        ("inconsistency_score", 0.05, 0.5, +1),
        ("prior_claims", 0, 4, +1),
        ("claim_amount", 200.0, 2500.0, +1),
        ("monthly_income", 800.0, 5000.0, -1),
        ("benefit_type", "food", "disability", +1),
        ("employment_status", "employed", "self_employed", +1),
        ("application_channel", "online", "mail", +1),
    ],
)
def test_directional_effects_the_generator_builds_in(model, probe, column, low, high, direction):
    lo, hi = probe.copy(), probe.copy()
    lo[column], hi[column] = low, high
    delta = direction * (model.predict_proba(hi) - model.predict_proba(lo))
    # The average row moves the right way, and few rows move the wrong way by more than noise.
    assert delta.mean() > 0.01, (column, delta.mean())
    assert (delta < -0.05).mean() < 0.1, (column, (delta < -0.05).mean())


def test_the_region_bias_is_learnt_through_the_postcode_proxy(cfg, model, probe):
    east = probe[probe["region"] == "East"].copy()
    assert len(east) > 50
    moved = east.copy()
    moved["postcode_area"] = "N1"  # a North postcode: the proxy now says "not East"
    drop = model.predict_proba(east) - model.predict_proba(moved)
    assert drop.mean() > 0.1, drop.mean()


def test_without_injected_bias_the_postcode_carries_little(cfg, probe):
    fair = _train(cfg, demo.generate_benefits(rows=6000, bias=0.0, seed=11))
    east = probe[probe["region"] == "East"].copy()
    moved = east.copy()
    moved["postcode_area"] = "N1"
    assert abs((fair.predict_proba(east) - fair.predict_proba(moved)).mean()) < 0.05
