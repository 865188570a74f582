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


def test_streamed_file_has_the_rows_of_the_blocks_and_blocks_are_one_distribution(tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    from civicml.data.demo import iter_benefits, write_benefits

    blocks = list(iter_benefits(25_000, month=2, seed=5, chunk_rows=10_000))
    assert [len(b) for b in blocks] == [10_000, 10_000, 5_000]
    # Block 0 is the table as it always was; later blocks are fresh samples, not copies.
    assert _digest(blocks[0]) == _digest(generate_benefits(10_000, month=2, seed=5))
    assert _digest(blocks[1].iloc[:100]) != _digest(blocks[0].iloc[:100])
    for col in ("monthly_income", "inconsistency_score"):
        assert blocks[1][col].mean() == pytest.approx(blocks[0][col].mean(), rel=0.03)
    path = tmp_path / "claims.parquet"
    assert write_benefits(path, 25_000, month=2, seed=5, chunk_rows=10_000) == 25_000
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 3 and meta.num_rows == 25_000  # one block in memory at a time
    assert _digest(pd.read_parquet(path)) == _digest(pd.concat(blocks, ignore_index=True))
    csv = tmp_path / "claims.csv"
    write_benefits(csv, 25_000, month=2, seed=5, chunk_rows=10_000)
    expected = "".join(b.to_csv(index=False, header=i == 0) for i, b in enumerate(blocks))
    assert csv.read_text() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims.csv", "claims.parquet"]  # no temp files left


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    from civicml.data import demo

    first = demo.generate_benefits(100)

    def broken(*args, **kwargs):
        yield first
        raise OSError("disk full")

    monkeypatch.setattr(demo, "iter_benefits", broken)
    with pytest.raises(OSError, match="disk full"):
        demo.write_benefits(tmp_path / "t.parquet", 200)
    assert list(tmp_path.iterdir()) == []


def test_in_memory_table_beyond_one_block_is_the_streamed_one(monkeypatch):
    import pandas as pd

    from civicml.data import demo

    blocks = list(demo.iter_benefits(2_500, chunk_rows=1_000))
    monkeypatch.setattr(demo, "iter_benefits", lambda *a, **k: iter(blocks))
    assert _digest(demo.generate_benefits(2_500)) == _digest(pd.concat(blocks, ignore_index=True))
