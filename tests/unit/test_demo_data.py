"""The demo generator: determinism, schema, knobs."""

import hashlib

import numpy as np
import pytest

from civicml.data.demo import CATEGORICAL, DRIFTED_FEATURES, NUMERIC, PII, SENSITIVE, TARGET, generate_benefits


def _digest(df) -> str:
    return hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()


def test_same_seed_same_bytes_and_other_seed_differs():
    assert _digest(generate_benefits(2000, seed=3)) == _digest(generate_benefits(2000, seed=3))
    assert _digest(generate_benefits(2000, seed=3)) != _digest(generate_benefits(2000, seed=4))


def test_schema_has_features_sensitive_pii_and_binary_target():
    df = generate_benefits(1000)
    assert len(NUMERIC) + len(CATEGORICAL) >= 10
    for col in [*NUMERIC, *CATEGORICAL, *SENSITIVE, *PII, TARGET]:
        assert col in df.columns
    assert set(df[TARGET].unique()) == {0, 1}
    assert 0.2 < df[TARGET].mean() < 0.8


def test_month_shifts_only_drifted_features():
    m1, m6 = generate_benefits(20000, month=1), generate_benefits(20000, month=6)
    assert m6["monthly_income"].median() > m1["monthly_income"].median() * 1.2
    assert m6["claim_amount"].mean() > m1["claim_amount"].mean() * 1.4
    assert (m6["application_channel"] == "online").mean() > (m1["application_channel"] == "online").mean() + 0.3
    for col in set(NUMERIC) - set(DRIFTED_FEATURES):
        assert abs(m6[col].mean() - m1[col].mean()) < 0.1 * (abs(m1[col].mean()) + 1e-9) + 0.05


def test_bias_raises_target_rate_of_one_group_only():
    base, biased = generate_benefits(20000, bias=0.0), generate_benefits(20000, bias=1.0)
    east = lambda d: d.loc[d.region == "East", TARGET].mean()  # noqa: E731
    west = lambda d: d.loc[d.region == "West", TARGET].mean()  # noqa: E731
    assert east(biased) - east(base) > 0.25
    assert abs(west(biased) - west(base)) < 0.03


def test_size_knob_and_bad_values():
    assert len(generate_benefits(1234)) == 1234
    with pytest.raises(ValueError, match="bias"):
        generate_benefits(100, bias=2.0)
    with pytest.raises(ValueError, match="month"):
        generate_benefits(100, month=0)
    assert np.isfinite(generate_benefits(100).select_dtypes("number").to_numpy()).all()
