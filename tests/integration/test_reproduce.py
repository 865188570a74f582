"""`civicml reproduce`: retraining a version from its lineage gives the identical model hash,
creates no version, and names the recorded input that differs when it does not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from support import FAST as SMALL_RUN
from support import register_trained, train_through_gate
from typer.testing import CliRunner

from civicml.cli import reproduce as reproduce_cli
from civicml.cli import storage as storage_cli
from civicml.config import load_config
from civicml.data.demo import generate_benefits
from civicml.governance.audit import AuditLog
from civicml.reproduce import reproduce
from civicml.storage.registry import Registry, RegistryError
from civicml.storage.store import open_store

FAST = {
    **SMALL_RUN,
    "data.demo.rows": 1500,
    "model.params": {"n_estimators": 20, "max_depth": 3},
    "model.n_threads": 2,  # reproducibility must hold with more than one thread
}


def _train_version(cfg, work: Path) -> dict:
    train_through_gate(cfg, work)
    return register_trained(cfg, work)


def _cli(store: Path, *args: str):
    app = typer.Typer()
    storage_cli.register(app)
    reproduce_cli.register(app)
    return CliRunner().invoke(app, [*args, "--store", str(store)])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One version trained from a CSV into a template store (training is the slow part; tests copy it)."""
    root = tmp_path_factory.mktemp("reproduce")
    csv = root / "claims.csv"
    generate_benefits(rows=1500, month=1, bias=0.0, seed=3).to_csv(csv, index=False)
    with pytest.MonkeyPatch.context() as m:
        m.delenv("CIVICML_STORE_URI", raising=False)
        # Pin the recorded code revision: other commits landing while the tests run must not count.
        m.setenv("CIVICML_REVISION", "test-revision")
        cfg = load_config(None, {**FAST, "storage.uri": str(root / "store"), "data.source": str(csv)})
        man = _train_version(cfg, root / "run")
    return root / "store", man, csv


@pytest.fixture
def store(trained, tmp_path, monkeypatch) -> Path:
    """A private copy of the template store."""
    monkeypatch.delenv("CIVICML_STORE_URI", raising=False)
    monkeypatch.setenv("CIVICML_REVISION", "test-revision")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(trained[0], tmp_path / "store")
    return tmp_path / "store"


def test_reproduce_gives_the_identical_model_hash(trained, store):
    _, man, _ = trained
    reg = Registry(open_store(str(store)))
    keys_before = reg.store.list_keys()

    result = reproduce(reg, man["version"], actor="tester")
    assert result["identical"] is True, result
    assert result["reproduced_model_sha256"] == man["model_sha256"]
    assert result["differences"] == []
    # No new version, no staging data, no contract change: only one audit record was added.
    added = sorted(set(reg.store.list_keys()) - set(keys_before))
    assert set(keys_before) <= set(reg.store.list_keys())
    assert len(added) == 1 and added[0].startswith("audit/records/"), added
    last = AuditLog(reg.store).records()[-1]
    assert (last["event"], last["actor"], last["payload"]["identical"]) == ("reproduce_checked", "tester", True)
    assert AuditLog(reg.store).verify()[0]

    res = _cli(store, "reproduce", man["version"])
    assert res.exit_code == 0, res.output
    assert "identical" in res.output and man["model_sha256"] in res.output


def test_reproduce_names_changed_data(trained, store):
    _, man, csv = trained
    original = csv.read_bytes()
    df = generate_benefits(rows=1500, month=1, bias=0.0, seed=3)
    df.loc[:10, "claim_amount"] = df.loc[:10, "claim_amount"] * 2
    try:
        df.to_csv(csv, index=False)  # the data changed under the same path
        res = _cli(store, "reproduce", man["version"], "--json")
    finally:
        csv.write_bytes(original)
    assert res.exit_code == 1
    out = json.loads(res.output)
    assert out["identical"] is False
    assert out["verdict"].startswith("different: recorded input(s) differ now: data fingerprint")
    fp = next(d for d in out["differences"] if d["input"] == "data fingerprint")
    assert fp["recorded"] == man["lineage"]["data_fingerprint"] and fp["current"] != fp["recorded"]
    assert [m["version"] for m in Registry(open_store(str(store))).versions()] == [man["version"]]


def test_reproduce_names_differing_libraries_and_code(trained, store):
    _, man, _ = trained
    reg = Registry(open_store(str(store)))
    # Pretend the version was trained elsewhere: edit its recorded lineage (not the model).
    key = f"versions/{man['version']}/manifest.json"
    edited = json.loads(reg.store.get_bytes(key))
    edited["lineage"]["libraries"]["xgboost-cpu"] = "0.0.1"
    edited["lineage"]["code_revision"] = "0123abc"
    reg.store.put_bytes(key, json.dumps(edited).encode())
    result = reproduce(reg, man["version"])
    # The model still reproduces bit for bit, and the report still names what differs from the record.
    assert result["identical"] is True
    inputs = {d["input"] for d in result["differences"]}
    assert {"library versions", "code revision"} <= inputs and "data fingerprint" not in inputs
    lib = next(d for d in result["differences"] if d["input"] == "library versions")
    assert (lib["key"], lib["recorded"]) == ("xgboost-cpu", "0.0.1")


def test_reproduce_refuses_a_tampered_version_and_an_unknown_one(trained, store):
    _, man, _ = trained
    reg = Registry(open_store(str(store)))
    reg.store.put_bytes(man["artifacts"]["tuning.json"]["key"], b'{"best_params": {"max_depth": 12}}')
    res = _cli(store, "reproduce", man["version"])
    assert res.exit_code == 1 and "'tuning.json'" in res.output and "integrity check" in res.output
    assert "Traceback" not in res.output
    with pytest.raises(RegistryError, match="no model version 'v-nope'"):
        reproduce(reg, "v-nope")


def test_reproduce_refuses_a_version_whose_model_file_was_replaced(trained, store):
    _, man, _ = trained
    reg = Registry(open_store(str(store)))
    key = man["artifacts"]["model/model.json"]["key"]
    original = reg.store.get_bytes(key)
    try:
        reg.store.put_bytes(key, original + b" ")
        res = _cli(store, "reproduce", man["version"])
        assert res.exit_code == 1 and "fails verification" in res.output and "model/model.json" in res.output
    finally:
        reg.store.put_bytes(key, original)


def test_register_records_the_submitter_passed_by_the_pipeline(trained, store, monkeypatch):
    """Issue 19: on a cluster the step pod runs as the pipeline's ServiceAccount, so `civicml submit`
    passes the person as the `started_by` parameter; the lineage records that person, not the pod."""
    monkeypatch.setenv("CIVICML_ACTOR", "system:serviceaccount:team:pipeline-runner")
    _, man, csv = trained
    cfg = load_config(None, {**FAST, "storage.uri": str(store), "data.source": str(csv)})
    run_dir = store.parent / "run"
    shutil.copytree(trained[0].parent / "run", run_dir)
    submitted = register_trained(cfg, run_dir, version="v-submitted", started_by="A. Jones")
    assert submitted["lineage"]["started_by"] == "A. Jones"
    local = register_trained(cfg, run_dir, version="v-local")
    assert local["lineage"]["started_by"] == "system:serviceaccount:team:pipeline-runner"
