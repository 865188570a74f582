"""Issue 13 item 8 (partly): a shared `name:` is named as the cause; `civicml init` drafts a new project's config."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from civicml import steps
from civicml.cli import app
from civicml.config import RunConfig, load_config
from civicml.data.demo import generate_benefits
from civicml.data.errors import DataError


def test_a_copied_config_with_other_data_is_refused_naming_the_shared_name(tmp_path):
    store = str(tmp_path / "store")
    first = RunConfig.model_validate({"storage": {"uri": store}, "data": {"demo": {"rows": 600}}})
    steps.validate_data(first, str(tmp_path / "d1"))
    from civicml.storage.registry import Registry
    from civicml.storage.store import LocalStore

    # As the first run's register step stores it once a version is committed.
    Registry(LocalStore(store)).save_contract(first.name, json.loads((tmp_path / "d1" / "contract.json").read_text()))
    other = generate_benefits(rows=400, seed=3)[["monthly_income", "household_size", "region", "sex"]]
    other["benefit_amount"] = other["monthly_income"] * 0.1
    path = tmp_path / "other.csv"
    other.to_csv(path, index=False)
    copied = first.model_copy(
        update={
            "task": "regression",
            "data": first.data.model_copy(update={"source": str(path), "target": "benefit_amount"}),
        }
    )
    with pytest.raises(DataError) as err:
        steps.validate_data(copied, str(tmp_path / "d2"))
    text = str(err.value)
    assert "project name 'benefits-review' is already used" in text
    assert "set name: benefits-review-benefit-amount" in text and "required by the data contract" not in text


def test_init_writes_a_config_that_runs_and_shows_the_contract(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    df = generate_benefits(rows=300, seed=1)
    (tmp_path / "data").mkdir()
    df.to_csv(tmp_path / "data" / "School Meals.csv", index=False)
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "init",
            "data/School Meals.csv",
            "--target",
            "needs_review",
            "--sensitive",
            "sex,age_band",
            "--pii",
            "claimant_name",
            "-o",
            "proj/civicml.yaml",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "inferred contract (300 rows)" in res.output and "PII: dropped" in res.output
    raw = yaml.safe_load((tmp_path / "proj" / "civicml.yaml").read_text())
    assert raw["name"] == "school-meals" and raw["task"] == "binary_classification"
    assert "sex" not in raw["data"]["categorical_features"] and "claimant_name" not in json.dumps(
        raw["data"]["numeric_features"]
    )
    cfg = load_config(tmp_path / "proj" / "civicml.yaml")  # loads, with paths relative to the file
    assert cfg.data.source == str((tmp_path / "data" / "School Meals.csv").resolve())
    assert cfg.card.missing() == ["owner", "intended_use", "limitations"]
    again = runner.invoke(app, ["init", "data/School Meals.csv", "--target", "x", "-o", "proj/civicml.yaml"])
    assert again.exit_code != 0 and "never overwrites" in again.output
    wrong = runner.invoke(app, ["init", "data/School Meals.csv", "--target", "nope", "-o", "p2.yaml"])
    assert wrong.exit_code == 1 and "'nope'" in wrong.output and not (tmp_path / "p2.yaml").exists()
