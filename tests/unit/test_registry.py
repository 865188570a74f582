"""Registry on a LocalStore: commit-by-manifest, integrity, aliases, staging GC, diff and the `models` CLI."""

from __future__ import annotations

import json
import os
import time

import pytest
import typer
from typer.testing import CliRunner

from civicml.cli import storage as storage_cli
from civicml.governance.audit import AuditLog
from civicml.steps import model_hash
from civicml.storage.registry import (
    IntegrityError,
    Registry,
    RegistryError,
    diff_manifests,
    tree_hash,
)
from civicml.storage.store import LocalStore


def _commit(reg: Registry, version: str, model: bytes = b"model-bytes", auc: float = 0.8, seed: int = 42) -> dict:
    arts = {
        "model/model.json": reg.upload(version, "model/model.json", b'{"family": "xgboost"}'),
        "model/model.ubj": reg.upload(version, "model/model.ubj", model),
        "evaluation.json": reg.upload(version, "evaluation.json", b'{"metrics": {}}'),
    }
    sha = tree_hash({n[len("model/") :]: e["sha256"] for n, e in arts.items() if n.startswith("model/")})
    meta = {
        "name": "benefits-review",
        "family": "xgboost",
        "status": "approved",
        "model_sha256": sha,
        "metrics": {"roc_auc": auc, "f1": 0.5},
        "gate": {"decision": "deploy", "reason": "all rules passed"},
        "lineage": {
            "data_source": "demo:benefits",
            "data_fingerprint": "fp-" + version,
            "rows": {"train": 10},
            "config": {"model": {"seed": seed, "n_threads": 2}},
            "seeds": {"model": seed},
            "code_revision": "abc",
            "libraries": {"xgboost": "3.2.0"},
            "image": "local",
        },
    }
    man = reg.commit(version, arts, meta)
    AuditLog(reg.store).append("version_committed", {"version": version, "model_sha256": sha})
    return man


@pytest.fixture
def reg(tmp_path) -> Registry:
    return Registry(LocalStore(tmp_path / "store"))


def test_staged_artifacts_are_invisible_until_the_manifest_is_written(reg):
    reg.upload("v1", "model/model.ubj", b"x")
    assert reg.versions() == []
    with pytest.raises(RegistryError, match="no model version 'v1'"):
        reg.manifest("v1")
    _commit(reg, "v1")
    assert [m["version"] for m in reg.versions()] == ["v1"]


def test_a_version_is_never_overwritten(reg):
    _commit(reg, "v1")
    with pytest.raises(RegistryError, match="already exists"):
        _commit(reg, "v1")


def test_tampered_or_missing_artifact_is_refused(reg, tmp_path):
    _commit(reg, "v1")
    assert reg.read_artifact("v1", "model/model.ubj") == b"model-bytes"
    assert reg.verify("v1") == []
    reg.store.put_bytes("staging/v1/model/model.ubj", b"evil-bytes")
    with pytest.raises(IntegrityError, match="'model/model.ubj' of version v1 failed its integrity check"):
        reg.read_artifact("v1", "model/model.ubj")
    with pytest.raises(IntegrityError):
        reg.fetch_prefix("v1", "model", tmp_path / "out")
    reg.store.delete("staging/v1/evaluation.json")
    problems = reg.verify("v1")
    assert len(problems) == 2
    assert any("missing from the store" in p for p in problems)


def test_edited_manifest_model_hash_is_caught(reg):
    _commit(reg, "v1")
    key = "versions/v1/manifest.json"
    man = json.loads(reg.store.get_bytes(key))
    man["model_sha256"] = "0" * 64
    reg.store.put_bytes(key, json.dumps(man).encode())
    assert any("manifest was edited after commit" in p for p in reg.verify("v1"))


def test_damaged_manifest_is_an_integrity_error(reg):
    reg.store.put_bytes("versions/v9/manifest.json", b"{not json")
    with pytest.raises(IntegrityError, match="versions/v9/manifest.json .* not valid JSON"):
        reg.manifest("v9")
    # Listing goes on without it and reports it (issue 12 item 10).
    assert reg.versions() == [] and "not valid JSON" in reg.damaged_versions()[0]["problem"]


def test_tree_hash_matches_steps_model_hash(tmp_path):
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "model.json").write_text("{}")
    (d / "model.ubj").write_bytes(b"\x01\x02")
    (d / "sub" / "extra.bin").write_bytes(b"e")
    from civicml.storage.registry import sha256_bytes

    files = {p.relative_to(d).as_posix(): sha256_bytes(p.read_bytes()) for p in d.rglob("*") if p.is_file()}
    assert tree_hash(files) == model_hash(d)


def test_alias_moves_are_recorded(reg):
    _commit(reg, "v1")
    _commit(reg, "v2")
    reg.set_alias("champion", "v1", by="alice", reason="first")
    reg.set_alias("champion", "v2", by="pipeline", reason="gate decision: deploy")
    assert reg.get_alias("champion") == "v2"
    assert reg.manifest("champion")["version"] == "v2"
    hist = reg.alias_history("champion")
    assert [(h["from"], h["to"], h["by"]) for h in hist] == [(None, "v1", "alice"), ("v1", "v2", "pipeline")]
    assert hist[1]["reason"] == "gate decision: deploy" and hist[1]["at"]
    with pytest.raises(RegistryError, match="no model version 'v3'"):
        reg.set_alias("champion", "v3", by="x", reason="")
    with pytest.raises(RegistryError, match="unknown alias 'prod'"):
        reg.set_alias("prod", "v1", by="x", reason="")
    with pytest.raises(RegistryError, match="alias 'challenger' is not set"):
        reg.manifest("challenger")
    assert reg.get_alias("champion") == "v2"  # refused moves changed nothing


def test_gc_removes_only_old_abandoned_staging(reg):
    _commit(reg, "v-committed")
    reg.upload("v-abandoned", "model/model.ubj", b"x")
    reg.upload("v-abandoned", "evaluation.json", b"y")
    reg.upload("v-running", "model/model.ubj", b"z")
    old = time.time() - 7200
    for key in reg.store.list_keys("staging/v-abandoned/"):
        os.utime(reg.store.local_path(key), (old, old))
    assert reg.abandoned_staging(3600) == ["v-abandoned"]
    assert reg.abandoned_staging(0) == ["v-abandoned", "v-running"]
    assert reg.gc_staging(3600) == ["v-abandoned"]
    assert reg.store.list_keys("staging/v-abandoned/") == []
    assert reg.store.list_keys("staging/v-running/") == ["staging/v-running/model/model.ubj"]
    assert reg.verify("v-committed") == []  # committed artifacts untouched


def test_diff_manifests(reg):
    a = _commit(reg, "v1", auc=0.8, seed=1)
    b = _commit(reg, "v2", model=b"other", auc=0.85, seed=2)
    d = diff_manifests(a, b)
    assert {r["key"] for r in d["summary"]} >= {"model_sha256"}
    assert d["metrics"] == [{"key": "roc_auc", "a": 0.8, "b": 0.85, "delta": pytest.approx(0.05)}]
    assert {r["key"] for r in d["lineage"]} == {"data_fingerprint", "seeds.model"}
    assert d["config"] == [{"key": "model.seed", "a": 1, "b": 2}]
    assert [r["key"] for r in d["artifacts"]] == ["model/model.ubj"]
    assert diff_manifests(a, a)["metrics"] == []


# -- CLI -------------------------------------------------------------------------------


@pytest.fixture
def cli(reg, monkeypatch):
    monkeypatch.delenv("CIVICML_STORE_URI", raising=False)
    app = typer.Typer()
    storage_cli.register(app)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [*args, "--store", reg.store.uri])

    return invoke


def test_cli_list_show_diff(cli, reg):
    res = cli("models", "list")
    assert res.exit_code == 0 and "no model versions" in res.output
    _commit(reg, "v1")
    _commit(reg, "v2", model=b"other", auc=0.9)
    reg.set_alias("champion", "v2", by="alice", reason="better")
    res = cli("models", "list", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["version"] for r in rows] == ["v1", "v2"] and rows[1]["aliases"] == ["champion"]
    res = cli("models", "show", "champion", "--json")
    assert json.loads(res.output)["version"] == "v2"
    res = cli("models", "show", "v2")
    assert res.exit_code == 0 and "fp-v2" in res.output and "champion: - -> v2 by alice" in res.output
    res = cli("models", "diff", "v1", "v2", "--json")
    assert json.loads(res.output)["metrics"][0]["key"] == "roc_auc"
    res = cli("models", "diff", "v1", "v2")
    assert res.exit_code == 0 and "roc_auc" in res.output
    res = cli("models", "show", "v404")
    assert res.exit_code == 1 and "no model version 'v404'" in res.output and "Traceback" not in res.output


def test_cli_verify_exit_codes(cli, reg):
    _commit(reg, "v1")
    _commit(reg, "v2")
    res = cli("models", "verify")
    assert res.exit_code == 0 and "all 2 version(s) verified" in res.output
    reg.store.put_bytes("staging/v2/model/model.ubj", b"tampered")
    res = cli("models", "verify")
    assert res.exit_code == 1
    assert "FAIL v2" in res.output and "failed its integrity check" in res.output
    assert cli("models", "verify", "v1").exit_code == 0
    res = cli("models", "verify", "v2", "--json")
    assert res.exit_code == 1 and json.loads(res.output)["ok"] is False


def test_cli_verify_catches_manifest_rewritten_consistently(cli, reg):
    # Someone swaps the model and rewrites the manifest so that every sha256 and the model hash agree:
    # only the audit log's commit record can tell.
    _commit(reg, "v1")
    reg.store.put_bytes("staging/v1/model/model.ubj", b"swapped")
    key = "versions/v1/manifest.json"
    man = json.loads(reg.store.get_bytes(key))
    fresh = reg.upload("v1", "model/model.ubj", b"swapped")
    man["artifacts"]["model/model.ubj"] = fresh
    man["model_sha256"] = tree_hash({n[6:]: e["sha256"] for n, e in man["artifacts"].items() if n.startswith("model/")})
    reg.store.put_bytes(key, json.dumps(man).encode())
    assert reg.verify("v1") == []
    res = cli("models", "verify", "v1")
    assert res.exit_code == 1 and "audit log's commit record" in res.output


def test_cli_gc(cli, reg):
    reg.upload("v-old", "x", b"1")
    old = time.time() - 3 * 86400
    os.utime(reg.store.local_path("staging/v-old/x"), (old, old))
    reg.upload("v-new", "x", b"1")
    res = cli("models", "gc", "--older-than", "2d", "--dry-run")
    assert res.exit_code == 0 and "would remove" in res.output and "v-old" in res.output
    assert reg.store.exists("staging/v-old/x")
    res = cli("models", "gc", "--older-than", "2d", "--json")
    assert json.loads(res.output) == {"dry_run": False, "versions": ["v-old"], "runs": []}
    assert not reg.store.exists("staging/v-old/x") and reg.store.exists("staging/v-new/x")
    assert AuditLog(reg.store).records()[-1]["event"] == "staging_removed"
    res = cli("models", "gc", "--older-than", "soon")
    assert res.exit_code == 1 and "is not a duration" in res.output


@pytest.mark.parametrize(("text", "seconds"), [("0", 0), ("90s", 90), ("30m", 1800), ("6h", 21600), ("2d", 172800)])
def test_parse_duration(text, seconds):
    assert storage_cli.parse_duration(text) == seconds
