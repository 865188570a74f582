"""Champion comparison: paired bootstrap of the headline metric, McNemar, and safe skipping."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from civicml.data.demo import CATEGORICAL, NUMERIC, TARGET, generate_benefits
from civicml.evaluation.compare import compare_with_champion, mcnemar, paired_comparison
from civicml.governance.trust import commit_version
from civicml.modeling.estimators import fit_model
from civicml.modeling.persistence import save_model
from civicml.modeling.preprocessing import FeatureSpec
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore


@pytest.fixture
def scores():
    rng = np.random.default_rng(4)
    n = 2000
    y = rng.integers(0, 2, n)
    good = np.clip(0.4 * y + 0.6 * rng.random(n), 0, 1)
    return y, good


def test_identical_models_differ_by_exactly_zero(scores):
    y, s = scores
    r = paired_comparison("binary_classification", y, s, s, margin=0.01, n_resamples=200)
    assert r["difference"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0
    assert not r["significantly_worse"] and r["non_inferior"] and r["mcnemar_p"] == 1.0


def test_much_worse_challenger_is_significantly_worse(scores):
    y, good = scores
    noisy = np.clip(good + np.random.default_rng(1).normal(0, 0.5, len(y)), 0, 1)
    r = paired_comparison("binary_classification", y, noisy, good, margin=0.01, n_resamples=300)
    assert r["difference"] < 0 and r["ci_high"] < -0.01
    assert r["significantly_worse"] and not r["non_inferior"]
    assert r["mcnemar_p"] < 0.05
    assert r["champion_only_correct"] > r["challenger_only_correct"]


def test_regression_difference_is_oriented_positive_when_challenger_better():
    rng = np.random.default_rng(2)
    y = rng.normal(size=1000)
    better, worse = y + rng.normal(0, 0.3, 1000), y + rng.normal(0, 0.6, 1000)
    r = paired_comparison("regression", y, better, worse, margin=0.0, n_resamples=200)
    assert r["metric"] == "rmse" and r["challenger"] < r["champion"]
    assert r["difference"] == pytest.approx(r["champion"] - r["challenger"]) and r["ci_low"] > 0
    assert r["mcnemar_p"] is None


def test_mcnemar_is_exact_binomial_on_discordant_pairs():
    y = np.array([1] * 20)
    a = np.array([1] * 12 + [0] * 8)  # a right on 12
    b = np.array([1] * 2 + [0] * 10 + [1] * 8)  # b right on 2 shared + 8 others
    m = mcnemar(y, a, b)
    assert (m["a_only_correct"], m["b_only_correct"]) == (10, 8)
    assert m["p_value"] == pytest.approx(binomtest(10, 18, 0.5).pvalue)


def _commit(registry: Registry, version: str, model, tmp_path):
    d = tmp_path / version
    save_model(model, d)
    arts = registry.upload_dir(version, "model", d)
    commit_version(registry, version, arts, {"status": "approved"})
    registry.set_alias("champion", version, by="test", reason="test")


def test_compare_with_champion_from_registry_and_skips(tmp_path):
    df = generate_benefits(rows=1600, seed=5)
    train, test = df.iloc[:1200], df.iloc[1200:]
    spec = FeatureSpec.fit(train, TARGET, "binary_classification", NUMERIC, CATEGORICAL)
    challenger = fit_model("xgboost", spec, {"n_estimators": 20, "max_depth": 3}, train, 1, 1)
    registry = Registry(LocalStore(tmp_path / "store"))
    assert compare_with_champion(challenger, test, registry, margin=0.01, n_resamples=50) is None

    _commit(registry, "v1", challenger, tmp_path)
    r = compare_with_champion(challenger, test, registry, margin=0.01, n_resamples=50)
    assert r["champion_version"] == "v1" and r["difference"] == 0 and not r["significantly_worse"]

    # A champion that needs a column the new data lacks is recorded and skipped, never a crash.
    spec2 = FeatureSpec.fit(train.assign(extra=1.0), TARGET, "binary_classification", [*NUMERIC, "extra"], CATEGORICAL)
    other = fit_model("xgboost", spec2, {"n_estimators": 5}, train.assign(extra=1.0), 1, 1)
    _commit(registry, "v2", other, tmp_path)
    r = compare_with_champion(challenger, test, registry, margin=0.01, n_resamples=50)
    assert r["champion_version"] == "v2" and "extra" in r["skipped"]

    # A champion whose stored bytes were altered fails its integrity check: skipped with the reason.
    key = registry.manifest("v1")["artifacts"]["model/model.ubj"]["key"]
    registry.store.put_bytes(key, b"tampered")
    registry.set_alias("champion", "v1", by="test", reason="test")
    r = compare_with_champion(challenger, test, registry, margin=0.01, n_resamples=50)
    assert "integrity" in r["skipped"]
