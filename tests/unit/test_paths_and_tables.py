"""Issue 13 item 12: paths relative to the config file, store file modes, whole tables on a pipe."""

from __future__ import annotations

import os
import stat

from typer.testing import CliRunner

from civicml.cli import app
from civicml.config import load_config
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore


def test_relative_paths_resolve_against_the_config_files_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "civicml.yaml").write_text(
        "name: p\ndata: {source: data/claims.csv, target: y}\nmonitoring: {window_source: batches/new.csv}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(project / "civicml.yaml")
    assert cfg.data.source == str(project.resolve() / "data/claims.csv")
    assert cfg.storage.uri == str(project.resolve() / ".civicml")
    assert cfg.monitoring.window_source == str(project.resolve() / "batches/new.csv")
    (project / "civicml.yaml").write_text("name: p\nstorage: {uri: store}\ndata: {source: demo:benefits}\n")
    cfg = load_config(project / "civicml.yaml")
    assert cfg.storage.uri == str(project.resolve() / "store") and cfg.data.source == "demo:benefits"
    # Absolute paths, URIs and command-line overrides are left as given.
    (project / "civicml.yaml").write_text("name: p\nstorage: {uri: 's3://bucket/prefix'}\n")
    assert load_config(project / "civicml.yaml").storage.uri == "s3://bucket/prefix"
    assert load_config(project / "civicml.yaml", {"storage.uri": "here"}).storage.uri == "here"


def test_store_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        LocalStore(tmp_path / "s").put_bytes("a/b.json", b"{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "s" / "a" / "b.json").stat().st_mode)
    assert mode == 0o640, oct(mode)


def test_models_list_and_audit_show_are_not_cut_on_a_pipe(tmp_path):
    store = str(tmp_path / "store")
    reg = Registry(LocalStore(store))
    long_version = "v20261201-101010-" + "a" * 40
    reg.commit(long_version, {}, {"status": "approved", "metrics": {"roc_auc": 0.8123456}})
    reg.set_alias("champion", long_version, by="someone with a long name", reason="r" * 150)
    from civicml.governance.audit import AuditLog

    AuditLog(reg.store).append("alias_moved", {"alias": "champion", "to": long_version, "reason": "x" * 150})
    runner = CliRunner()
    listed = runner.invoke(app, ["models", "list", "--store", store])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if long_version in line)
    assert "champion" in row and "0.8123" in row and len(row) > 80
    shown = runner.invoke(app, ["audit", "show", "--store", store])
    assert shown.exit_code == 0, shown.output
    assert long_version in shown.output and "x" * 150 in shown.output.replace("\n", "")
