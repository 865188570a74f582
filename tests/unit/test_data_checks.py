"""Bad data that used to pass validation and fail later (or train silently) now stops in validate-data
with the column, the rule, an example and the fix, and stores nothing (issue 12 items 8 and 9's CSV hints)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from civicml import steps
from civicml.config import load_config
from civicml.data.demo import generate_benefits
from civicml.data.errors import DataError
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore


@pytest.fixture
def cfg(tmp_path):
    return load_config(
        None,
        {
            "storage.uri": str(tmp_path / "store"),
            "data.sensitive_attributes": ["sex", "age_band", "region"],
            "data.pii_columns": ["claimant_name"],
        },
    )


def _run(cfg, tmp_path, source):
    bad = cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": str(source)})})
    with pytest.raises(DataError) as err:
        steps.validate_data(bad, str(tmp_path / "d"), "v-bad")
    reg = Registry(LocalStore(cfg.storage.uri))
    assert reg.versions() == [] and reg.load_contract(cfg.name) is None
    assert not (tmp_path / "d" / "train.parquet").exists()
    return str(err.value)


def _demo(n=3000):
    return generate_benefits(n, seed=3)


def test_values_beyond_float32(cfg, tmp_path):
    df = _demo()
    df.loc[7, "claim_amount"] = 1e300
    df.to_csv(tmp_path / "big.csv", index=False)
    msg = _run(cfg, tmp_path, tmp_path / "big.csv")
    assert "'claim_amount'" in msg and "float32" in msg and "1e+300" in msg and "rescale" in msg


def test_duplicated_column_names(cfg, tmp_path):
    df = _demo()
    text = df.to_csv(index=False).splitlines()
    header = text[0].split(",")
    header[header.index("postcode_area")] = "region"  # two columns named region
    (tmp_path / "dup.csv").write_text("\n".join([",".join(header), *text[1:]]) + "\n")
    msg = _run(cfg, tmp_path, tmp_path / "dup.csv")
    assert "'region' appears twice" in msg and "region.1" in msg and "rename one" in msg


def test_saved_index_column(cfg, tmp_path):
    _demo().to_csv(tmp_path / "idx.csv")  # index=True writes an unnamed first column
    msg = _run(cfg, tmp_path, tmp_path / "idx.csv")
    assert "'Unnamed: 0'" in msg and "index=False" in msg


def test_id_like_column(cfg, tmp_path):
    df = _demo()
    df["case_ref"] = [f"CASE-{i:05d}" for i in range(len(df))]
    df.to_csv(tmp_path / "ids.csv", index=False)
    msg = _run(cfg, tmp_path, tmp_path / "ids.csv")
    assert "'case_ref' looks like an identifier" in msg and "3000 distinct values in 3000 rows" in msg
    assert "data.pii_columns" in msg


def test_column_name_xgboost_refuses(cfg, tmp_path):
    df = _demo().rename(columns={"claim_amount": "claim_amount[eur]"})
    df.to_csv(tmp_path / "br.csv", index=False)
    msg = _run(cfg, tmp_path, tmp_path / "br.csv")
    assert "'claim_amount[eur]'" in msg and "XGBoost" in msg and "claim_amount_eur]" not in msg


def test_a_million_columns_are_refused_from_the_header(cfg, tmp_path):
    names = [f"c{i}" for i in range(1_000_000)]
    (tmp_path / "wide.csv").write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    msg = _run(cfg, tmp_path, tmp_path / "wide.csv")
    assert "1000000 columns" in msg and "at most 10000" in msg


def test_first_run_failing_after_validation_stores_no_contract(cfg, tmp_path):
    info = steps.validate_data(cfg, str(tmp_path / "d"), "v1")
    assert info["contract_origin"] == "inferred"
    # (the run then dies in tune/train/evaluate: nothing was committed)
    assert Registry(LocalStore(cfg.storage.uri)).load_contract(cfg.name) is None


@pytest.mark.parametrize(
    "write,expected",
    [
        (lambda df, p: df.to_csv(p, index=False, sep=";"), "separated by semicolons"),
        (lambda df, p: p.write_bytes(df.to_csv(index=False).replace("C1", "Café").encode("latin-1")), "not UTF-8"),
        (lambda df, p: p.write_bytes(gzip.compress(df.to_csv(index=False).encode())), "gzip-compressed"),
    ],
)
def test_csv_dialect_encoding_and_gzip_get_a_hint(cfg, tmp_path, write, expected):
    df = _demo(300)
    write(df, tmp_path / "odd.csv")
    msg = _run(cfg, tmp_path, tmp_path / "odd.csv")
    assert expected in msg and "odd.csv" in msg


def test_gzip_named_gz_is_read(cfg, tmp_path):
    df = _demo(3000)
    (tmp_path / "ok.csv.gz").write_bytes(gzip.compress(df.to_csv(index=False).encode()))
    ok = cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": str(tmp_path / "ok.csv.gz")})})
    info = steps.validate_data(ok, str(tmp_path / "d"), "v1")
    assert sum(info["rows"].values()) == 3000 and np.isfinite(len(info["numeric_features"]))
