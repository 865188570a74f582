"""Issue 13 item 9: inferred ranges and categories; out-of-contract values visible or an error; all columns at once."""

from __future__ import annotations

import pandas as pd
import pytest

from civicml.config import ColumnSpec, DataConfig, RunConfig
from civicml.data.contract import RANGE_MARGIN, enforce_contract, infer_contract
from civicml.data.errors import DataError


def _first_batch() -> pd.DataFrame:
    return pd.DataFrame({"age": [18.0, 40.0, 68.0, 30.0], "income": [-10.0, 0.0, 90.0, 5.0], "area": list("ABAB")})


def test_inferred_contract_has_ranges_with_the_documented_margin_and_categories():
    spec = {c.name: c for c in infer_contract(_first_batch(), DataConfig(target="x"))}
    span = 68.0 - 18.0
    assert spec["age"].min == pytest.approx(max(0.0, 18.0 - RANGE_MARGIN * span))
    assert spec["age"].max == pytest.approx(68.0 + RANGE_MARGIN * span)
    assert spec["income"].min == pytest.approx(-10.0 - RANGE_MARGIN * 100.0)  # negative seen: no floor at 0
    assert spec["area"].categories == ["A", "B"]


def test_out_of_contract_values_warn_or_stop_and_every_column_is_reported():
    contract = infer_contract(_first_batch(), DataConfig(target="x"))
    batch = pd.DataFrame({"age": [-5.0, 30.0], "income": [1.0, 2.0], "area": ["A", "Z"]})
    _, report = enforce_contract(batch, contract, out_of_contract="warn")
    assert len(report.warnings) == 2
    assert "column 'age' has 1 values below min 13 (rule: range), e.g. -5.0" in report.warnings[0]
    assert "column 'area' has 1 values outside the contract's categories" in report.warnings[1]
    with pytest.raises(DataError) as err:
        enforce_contract(batch.assign(income=["x", 2.0]), contract, out_of_contract="error")
    text = str(err.value)
    assert "breaks the contract in 3 places" in text
    assert "'age'" in text and "'income' must be numeric" in text and "'area'" in text


def test_validate_data_shows_warnings_and_the_card_lists_them(tmp_path, capsys):
    from civicml import steps
    from civicml.data.demo import generate_benefits
    from civicml.evaluation.report import render_model_card

    df = generate_benefits(rows=600, seed=1)
    df.loc[0, "monthly_income"] = -5.0
    df.loc[1, "postcode_area"] = "ZZ9"
    path = tmp_path / "claims.csv"
    df.to_csv(path, index=False)
    declared = infer_contract(generate_benefits(rows=600, seed=2).drop(columns=["claimant_name"]), DataConfig())
    stored = [c.model_dump(mode="json") for c in declared]
    cfg = RunConfig.model_validate(
        {
            "data": {"source": str(path), "pii_columns": ["claimant_name"], "sensitive_attributes": ["sex"]},
            "storage": {"uri": str(tmp_path / "store")},
        }
    )
    from civicml.storage.registry import Registry
    from civicml.storage.store import LocalStore

    Registry(LocalStore(cfg.storage.uri)).save_contract(cfg.name, stored)  # as a first run would have stored it
    info = steps.validate_data(cfg, str(tmp_path / "data"))
    printed = capsys.readouterr().out
    assert any("'monthly_income'" in w and "below min" in w for w in info["warnings"])
    assert any("'postcode_area'" in w and "'ZZ9'" in w for w in info["warnings"])
    assert printed.count("data warning:") == len(info["warnings"])  # the KFP UI shows the step's stdout
    page, _ = render_model_card({"version": "v1", "data_warnings": info["warnings"]}, {"metrics": {}}, None, cfg)
    assert "Data outside the contract" in page and "ZZ9" in page
    strict = cfg.model_copy(update={"data": cfg.data.model_copy(update={"out_of_contract": "error"})})
    with pytest.raises(DataError, match="breaks the contract in 2 places"):
        steps.validate_data(strict, str(tmp_path / "data2"))
    assert ColumnSpec(name="a", kind="numeric").min is None
