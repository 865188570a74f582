"""Data fingerprint v2 (categoricals as codes, issue 18 item 3) against versions recorded with v1.

`tests/data/store-a745641-v1-fingerprint.tgz` is a store written by civicml at commit a745641,
before categoricals became codes: one committed champion (deployed; fairness rules off, roc_auc >= 0.5) trained on
`demo:benefits?rows=1500&seed=3` with 20 trees, two threads, its lineage without
`data_fingerprint_version` (so v1). It was made with `tests/support.py`'s `train_through_gate`
and `register_trained` of that commit.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from civicml import steps
from civicml.config import load_config
from civicml.data.fingerprint import FINGERPRINT_VERSION
from civicml.reproduce import recorded_config, reproduce
from civicml.storage.registry import Registry
from civicml.storage.store import open_store

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "store-a745641-v1-fingerprint.tgz"
VERSION = "v20261202-123318-7e1c71"
MODEL_SHA256 = "5735145988df1223b6ee1fd5c4ec4b8313667d950789a5ce82881747c0d901e4"
V1_FINGERPRINT = "sha256:70575f89a21f470ba8054a0921c5e75e564dc73f6ebbec348fbe14e93561afbb"
SOURCE = "demo:benefits?rows=1500&seed=3"


@pytest.fixture
def old_store(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("CIVICML_STORE_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path / "store", filter="data")
    return tmp_path / "store"


def _cfg(store: Path, source: str = SOURCE):
    """The version's recorded config (same project, features, contract, policy) on `source`."""
    man = json.loads((store / "versions" / VERSION / "manifest.json").read_text())
    cfg = recorded_config(man).model_copy(deep=True)
    cfg.storage.uri = str(store)
    cfg.data.source = source
    return cfg


def test_the_fixture_is_a_v1_version(old_store):
    man = Registry(open_store(str(old_store))).manifest(VERSION)
    assert "data_fingerprint_version" not in man["lineage"]
    assert man["lineage"]["data_fingerprint"] == V1_FINGERPRINT
    assert man["model_sha256"] == MODEL_SHA256


def test_a_version_made_before_codes_reproduces_identically(old_store):
    registry = Registry(open_store(str(old_store)))
    result = reproduce(registry, VERSION, actor="tester")
    assert result["identical"] is True, result["verdict"]
    assert result["reproduced_model_sha256"] == MODEL_SHA256
    # The data is recomputed at the recorded (v1) definition, so it is not reported as changed.
    assert not [d for d in result["differences"] if d["input"] in ("data fingerprint", "training shards")], result


def test_new_runs_record_v2_and_same_data_is_still_the_champions(old_store, tmp_path):
    cfg = _cfg(old_store)
    info = steps.validate_data(cfg, str(tmp_path / "data"))
    assert FINGERPRINT_VERSION == 2 and info["fingerprint_version"] == 2
    assert info["fingerprint"] != V1_FINGERPRINT
    # The champion's fingerprint is v1: the batch is compared at v1, and it is the same data.
    assert info["status"] == "no_new_data"
    other = steps.validate_data(_cfg(old_store, "demo:benefits?rows=1500&seed=4"), str(tmp_path / "other"))
    assert other["status"] == "ok"


def test_the_monitor_compares_a_batch_at_the_champions_definition(old_store, tmp_path):
    same = steps.monitor_drift(_cfg(old_store), "", str(tmp_path / "drift.json"), source=SOURCE)
    assert same["fingerprint"] == same["champion_fingerprint"] == V1_FINGERPRINT
    new = steps.monitor_drift(_cfg(old_store), "", str(tmp_path / "drift2.json"), source=SOURCE + "&month=2")
    assert new["fingerprint"] != new["champion_fingerprint"]


def test_register_records_the_definition_in_the_lineage(tmp_path, monkeypatch):
    from support import FAST, register_trained, train_through_gate

    monkeypatch.delenv("CIVICML_STORE_URI", raising=False)
    cfg = load_config(None, {**FAST, "storage.uri": str(tmp_path / "store")})
    train_through_gate(cfg, tmp_path / "run")
    man = register_trained(cfg, tmp_path / "run")
    assert man["lineage"]["data_fingerprint_version"] == FINGERPRINT_VERSION
    info = json.loads((tmp_path / "run" / "data" / "data_info.json").read_text())
    assert man["lineage"]["data_fingerprint"] == info["fingerprint"]
    # The splits keep categoricals as codes (category/dictionary columns), not a string per row.
    import pyarrow.parquet as pq

    schema = pq.read_schema(tmp_path / "run" / "data" / "train.parquet")
    assert str(schema.field("region").type).startswith("dictionary<")
