"""Each step function on small demo data, and validate_data's bad-input paths."""

import json
from pathlib import Path

import pandas as pd
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
            "data.demo.rows": 3000,
            "data.sensitive_attributes": ["sex", "age_band", "region"],
            "data.pii_columns": ["claimant_name"],
            "tuning.max_trials": 2,
            "policy.fairness": [],
        },
    )


def _registry(cfg) -> Registry:
    return Registry(LocalStore(cfg.storage.uri))


def test_validate_data_splits_fingerprints_profiles_and_drops_pii(cfg, tmp_path):
    info = steps.validate_data(cfg, str(tmp_path / "d"), "v-test")
    assert info["status"] == "ok" and info["version"] == "v-test"
    assert info["rows"] == {"train": 1950, "valid": 450, "test": 600}
    assert info["fingerprint"].startswith("sha256:")
    splits = steps.load_splits(tmp_path / "d")
    for frame in splits.values():
        assert "claimant_name" not in frame.columns
        assert 0.3 < frame["needs_review"].mean() < 0.6  # stratified
    assert "sex" not in info["numeric_features"] + info["categorical_features"]
    profile = json.loads((tmp_path / "d" / "profile.json").read_text())
    assert set(profile["features"]) == set(info["numeric_features"] + info["categorical_features"])
    # Deterministic: same input, same fingerprint and same rows.
    again = steps.validate_data(cfg, str(tmp_path / "d2"), "v-test2")
    assert again["fingerprint"] == info["fingerprint"]
    pd.testing.assert_frame_equal(steps.load_splits(tmp_path / "d2")["test"], splits["test"])
    # The inferred contract is stored with the first committed version (register), not by validation:
    # a first run that fails after validate-data leaves no contract behind (issue 12 item 8).
    assert _registry(cfg).load_contract(cfg.name) is None


def test_tune_train_evaluate_gate_register_deploy(cfg, tmp_path):
    d = str(tmp_path / "d")
    steps.validate_data(cfg, d, "v1")
    tuned = steps.tune(cfg, d, str(tmp_path / "params.json"), str(tmp_path / "trials.html"))
    assert len(tuned["trials"]) == 2 and tuned["best_params"]
    assert "<table" in (tmp_path / "trials.html").read_text()
    trained = steps.train(cfg, d, str(tmp_path / "params.json"), str(tmp_path / "model"))
    again = steps.train(cfg, d, str(tmp_path / "params.json"), str(tmp_path / "model2"))
    assert trained["model_sha256"] == again["model_sha256"]  # deterministic given the seed
    ev = steps.evaluate(cfg, d, str(tmp_path / "model"), str(tmp_path / "eval.json"), str(tmp_path / "r.html"))
    assert 0.6 < ev["metrics"]["roc_auc"] <= 1.0
    assert set(ev["fairness"]) == {"sex", "age_band", "region"}
    decision = steps.gate(cfg, str(tmp_path / "eval.json"), str(tmp_path / "gate.json"))
    assert decision["decision"] in {"deploy", "reject", "pending_approval"}
    assert all({"rule", "threshold", "value", "passed"} <= set(r) for r in decision["rules"])
    manifest = steps.register(
        cfg,
        d,
        str(tmp_path / "params.json"),
        str(tmp_path / "model"),
        str(tmp_path / "eval.json"),
        str(tmp_path / "gate.json"),
    )
    reg = _registry(cfg)
    assert [m["version"] for m in reg.versions()] == ["v1"]
    assert reg.verify("v1") == []
    # The inferred contract is stored with the first committed version.
    assert reg.load_contract(cfg.name) == json.loads((Path(d) / "contract.json").read_text())
    assert manifest["lineage"]["data_fingerprint"].startswith("sha256:")
    assert {"model/model.ubj", "model/model.json", "model_card.html", "data/profile.json"} <= set(manifest["artifacts"])
    steps.deploy(cfg, "v1")
    assert reg.get_alias("champion") == "v1"
    # Every step leaves evidence, in order, in a chain that verifies.
    from civicml.governance.audit import AuditLog

    log = AuditLog(reg.store)
    events = [r["event"] for r in log.records()]
    for expected in (
        "data_validated",
        "tuning_done",
        "model_trained",
        "evaluation_done",
        "gate_decided",
        "version_committed",
        "alias_moved",
        "deployed",
    ):
        assert expected in events, expected
    assert events.index("tuning_done") < events.index("model_trained") < events.index("version_committed")
    assert log.verify()[0]


def _write(tmp_path, df, name="data.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return str(path)


def _bad_cases(tmp_path):
    good = generate_benefits(600)
    text_numeric = good.copy()
    text_numeric["monthly_income"] = text_numeric["monthly_income"].astype(object)
    text_numeric.loc[[3, 17], "monthly_income"] = ["unknown", "twelve hundred"]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    one_class = good.assign(needs_review=0)
    return {
        "missing target": (
            _write(tmp_path, good.drop(columns=["needs_review"]), "nt.csv"),
            "target column 'needs_review'",
        ),
        "text in numeric": (_write(tmp_path, text_numeric, "tn.csv"), "column 'monthly_income' must be numeric"),
        "empty file": (str(empty), "is empty"),
        "one class": (_write(tmp_path, one_class, "oc.csv"), "one class only"),
        "no such file": (str(tmp_path / "missing.csv"), "does not exist"),
    }


@pytest.mark.parametrize("case", ["missing target", "text in numeric", "empty file", "one class", "no such file"])
def test_bad_input_stops_with_clear_message_and_writes_nothing(cfg, tmp_path, case):
    source, expected = _bad_cases(tmp_path)[case]
    bad_cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": source})})
    with pytest.raises(DataError) as err:
        steps.validate_data(bad_cfg, str(tmp_path / "d"), "v-bad")
    assert expected in str(err.value)
    if case == "text in numeric":
        assert "'unknown'" in str(err.value)  # an example of the bad value
    reg = _registry(cfg)
    assert reg.versions() == []
    assert reg.load_contract(cfg.name) is None  # a bad first batch sets no contract
    assert not (tmp_path / "d" / "train.parquet").exists()


def test_stored_contract_rejects_later_batch_with_text(cfg, tmp_path):
    steps.validate_data(cfg, str(tmp_path / "d"), "v1")  # infers and stores the contract
    df = generate_benefits(600, month=2)
    df["prior_claims"] = df["prior_claims"].astype(object)
    df.loc[5, "prior_claims"] = "unknown"
    bad_cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": _write(tmp_path, df)})})
    with pytest.raises(DataError, match="'prior_claims' must be numeric .*'unknown'"):
        steps.validate_data(bad_cfg, str(tmp_path / "d2"), "v2")


def test_deploy_refuses_a_version_that_is_not_approved(cfg, tmp_path):
    from civicml.storage.registry import RegistryError

    strict = cfg.model_copy(update={"policy": cfg.policy.model_copy(update={"min_metrics": {"roc_auc": 0.999}})})
    d = str(tmp_path / "d")
    steps.validate_data(strict, d, "v-low")
    steps.train(strict, d, None, str(tmp_path / "m"))
    steps.evaluate(strict, d, str(tmp_path / "m"), str(tmp_path / "e.json"))
    assert steps.gate(strict, str(tmp_path / "e.json"), str(tmp_path / "g.json"))["decision"] == "reject"
    steps.register(strict, d, None, str(tmp_path / "m"), str(tmp_path / "e.json"), str(tmp_path / "g.json"))
    with pytest.raises(RegistryError, match="is 'rejected'; only approved versions are deployed"):
        steps.deploy(strict, "v-low")
    assert _registry(cfg).get_alias("champion") is None
