"""Issue 13 item 8: per-project views of one store — older stores' aliases read, `models list`, `audit show`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from civicml.cli import app
from civicml.governance.audit import AuditLog
from civicml.governance.promotion import promote
from civicml.governance.trust import commit_version
from civicml.storage.registry import Registry, RegistryError
from civicml.storage.store import LocalStore


def _commit(registry: Registry, version: str) -> None:
    commit_version(registry, version, {}, {"status": "approved", "gate": {"decision": "deploy", "reason": "t"}})


def _old_move(store: LocalStore, alias: str, seq: int, frm: str | None, to: str) -> None:
    # Exactly what civicml wrote before projects were separated (storage/registry.py set_alias at 7ef7a82).
    move = {"alias": alias, "seq": seq, "from": frm, "to": to, "by": "old", "reason": "old", "at": "2026-12-01"}
    store.create(f"aliases/{alias}/{seq:012d}.json", json.dumps(move).encode())


def test_an_older_stores_champion_stays_its_projects_and_only_its(tmp_path):
    store = LocalStore(tmp_path / "store")
    alpha, beta = Registry(store, "alpha"), Registry(store, "beta")
    _commit(alpha, "a1")
    _commit(alpha, "a2")
    _old_move(store, "champion", 1, None, "a1")
    assert alpha.get_alias("champion") == "a1" and beta.get_alias("champion") is None
    assert Registry(store).get_alias("champion") == "a1"  # one project: the store-wide view reads it
    assert alpha.manifest("champion")["version"] == "a1"
    _commit(beta, "b1")
    promote(beta, "b1", by="x", reason="beta's first")
    assert alpha.get_alias("champion") == "a1" and beta.get_alias("champion") == "b1"
    # Alpha's next move continues the older sequence in its own folder; the history reads both layouts.
    move = promote(alpha, "a2", by="x", reason="next")
    assert move["previous"] == "a1"
    assert store.exists("projects/alpha/aliases/champion/000000000002.json")
    assert [(m["from"], m["to"]) for m in alpha.alias_history("champion")] == [(None, "a1"), ("a1", "a2")]
    assert [(m["from"], m["to"]) for m in beta.alias_history("champion")] == [(None, "b1")]


def test_an_older_champion_of_another_project_is_not_inherited(tmp_path):
    store = LocalStore(tmp_path / "store")
    _commit(Registry(store, "alpha"), "a1")
    _old_move(store, "champion", 1, None, "a1")
    beta = Registry(store, "beta")
    assert beta.get_alias("champion") is None
    with pytest.raises(RegistryError, match="alias 'champion' is not set \\(project beta\\)"):
        beta.manifest("champion")


def test_a_project_name_that_cannot_be_a_key_part_is_refused(tmp_path):
    with pytest.raises(RegistryError, match="set name: e.g. benefit-triage"):
        Registry(LocalStore(tmp_path), "../other")


def _config(tmp_path, name: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nstorage: {{uri: {tmp_path / 'store'}}}\n")
    return str(path)


def test_models_list_and_audit_show_are_per_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = LocalStore(tmp_path / "store")
    for name, version in (("alpha", "a1"), ("beta", "b1")):
        reg = Registry(store, name)
        _commit(reg, version)
        promote(reg, version, by="x", reason=f"{name} champion")
    runner = CliRunner()

    def listed(*args: str) -> list[dict]:
        res = runner.invoke(app, ["models", "list", "--json", *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    assert [(m["version"], m["aliases"]) for m in listed("-c", _config(tmp_path, "alpha"))] == [("a1", ["champion"])]
    assert [(m["version"], m["aliases"]) for m in listed("-c", _config(tmp_path, "beta"))] == [("b1", ["champion"])]
    everything = listed("--store", str(tmp_path / "store"))
    assert {(m["version"], m["name"], tuple(m["aliases"])) for m in everything} == {
        ("a1", "alpha", ("champion",)),
        ("b1", "beta", ("champion",)),
    }
    table = runner.invoke(app, ["models", "list", "--store", str(tmp_path / "store")])
    assert table.exit_code == 0 and "project" in table.output and "beta" in table.output

    shown = runner.invoke(app, ["audit", "show", "--json", "-n", "0", "-c", _config(tmp_path, "alpha")])
    records = [json.loads(line) for line in shown.output.splitlines()]
    named = {v for r in records for v in (r["payload"].get("version"), r["payload"].get("to")) if v}
    assert named == {"a1"}, named
    total = len(AuditLog(store).records())
    every = runner.invoke(app, ["audit", "show", "--json", "-n", "0", "--all-projects", "-c", _config(tmp_path, "a")])
    assert len(every.output.splitlines()) == total > len(records)
    # A project's approval command cannot reach another project's version.
    res = runner.invoke(
        app, ["approve", "b1", "--by", "A", "--role", "r", "--reason", "x", "-c", _config(tmp_path, "alpha")]
    )
    assert res.exit_code == 1 and "belongs to project 'beta'" in res.output
