"""One damaged manifest must not disable `models list`, `verify` and `gc` for every other version
(issue 12 item 10); run folders under <store>/runs are pruned to `storage.runs_keep` (item 13)."""

from __future__ import annotations

import json
import os
import time

import pytest
import typer
from typer.testing import CliRunner

from civicml.cli import storage as storage_cli
from civicml.orchestration.local import prune_runs
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore


def _commit(reg: Registry, version: str) -> None:
    arts = {"model/model.json": reg.upload(version, "model/model.json", b"{}")}
    reg.commit(version, arts, {"name": "p", "status": "approved", "metrics": {"roc_auc": 0.8}})


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("CIVICML_STORE_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    reg = Registry(LocalStore(tmp_path / "store"))
    for v in ("v1", "v2", "v3"):
        _commit(reg, v)
    return tmp_path / "store", reg


def _cli():
    app = typer.Typer()
    storage_cli.register(app)
    return app


@pytest.mark.parametrize(
    "damage",
    [b"{not json", b"[]", json.dumps({"schema": "civicml.manifest/v1", "artifacts": {}}).encode(), b"\xff\xfe"],
)
def test_one_damaged_manifest_leaves_the_others_usable(store, damage):
    root, reg = store
    (root / "versions" / "v2" / "manifest.json").write_bytes(damage)
    assert [m["version"] for m in reg.versions()] == ["v1", "v3"]
    assert [d["version"] for d in reg.damaged_versions()] == ["v2"]
    runner = CliRunner()
    listed = runner.invoke(_cli(), ["models", "list", "--store", str(root), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["version"], r["status"]) for r in rows] == [("v1", "approved"), ("v2", "damaged"), ("v3", "approved")]
    verified = runner.invoke(_cli(), ["models", "verify", "--store", str(root), "--json"])
    assert verified.exit_code == 1
    out = {r["version"]: r["problems"] for r in json.loads(verified.stdout)["versions"]}
    assert out["v1"] == [] and out["v3"] == [] and out["v2"] and "manifest" in out["v2"][0]
    gc = runner.invoke(_cli(), ["models", "gc", "--store", str(root), "--older-than", "0", "--json"])
    assert gc.exit_code == 0, gc.output
    # The damaged version is still committed: its artifacts are not garbage.
    assert json.loads(gc.stdout)["versions"] == []
    assert (root / "staging" / "v2" / "model" / "model.json").exists()


def test_prune_runs_keeps_the_newest(tmp_path):
    runs = tmp_path / "runs"
    for i in range(5):
        d = runs / f"v{i}"
        d.mkdir(parents=True)
        (d / "kfp-local.log").write_text("x")
        os.utime(d, (time.time() - 100 + i, time.time() - 100 + i))
    assert prune_runs(runs, 2) == ["v0", "v1", "v2"]
    assert sorted(p.name for p in runs.iterdir()) == ["v3", "v4"]
