"""Audit log: every kind of tampering is detected and the first bad record is named."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from civicml.cli import app
from civicml.governance.audit import AuditLog
from civicml.storage.store import LocalStore


@pytest.fixture
def log(tmp_path):
    audit = AuditLog(LocalStore(tmp_path / "store"))
    for i in range(5):
        audit.append(f"event_{i}", {"i": i}, actor="tester")
    return audit


def _lines(audit: AuditLog) -> list[str]:
    return audit.store.get_bytes(audit.key).decode().splitlines()


def _write(audit: AuditLog, lines: list[str]) -> None:
    audit.store.put_bytes(audit.key, ("\n".join(lines) + "\n").encode())


def test_intact_log_verifies(log):
    ok, msg = log.verify()
    assert ok and "5 records" in msg
    assert [r["seq"] for r in log.records()] == [1, 2, 3, 4, 5]
    assert log.head()["hash"] == log.records()[-1]["hash"]


def test_edit_is_detected(log):
    lines = _lines(log)
    rec = json.loads(lines[2])
    rec["payload"]["i"] = 99
    lines[2] = json.dumps(rec, sort_keys=True)
    _write(log, lines)
    result = log.check()
    assert not result["ok"] and result["first_bad_line"] == 3 and "edited" in result["message"]


def test_edit_with_recomputed_hash_breaks_the_next_link(log):
    from civicml.governance.audit import _digest

    lines = _lines(log)
    rec = json.loads(lines[1])
    rec["actor"] = "someone else"
    rec["hash"] = _digest(rec)
    lines[1] = json.dumps(rec, sort_keys=True)
    _write(log, lines)
    result = log.check()
    assert not result["ok"] and result["first_bad_line"] == 3 and "prev_hash" in result["message"]


def test_delete_in_the_middle_is_detected(log):
    lines = _lines(log)
    del lines[1]
    _write(log, lines)
    result = log.check()
    assert not result["ok"] and result["first_bad_line"] == 2 and "deleted, inserted or reordered" in result["message"]


def test_delete_at_the_end_is_detected_by_the_head(log):
    _write(log, _lines(log)[:-2])
    result = log.check()
    assert not result["ok"] and "deleted" in result["message"] and result["first_bad_seq"] == 4


def test_insert_is_detected(log):
    lines = _lines(log)
    lines.insert(2, lines[1])
    _write(log, lines)
    result = log.check()
    assert not result["ok"] and result["first_bad_line"] == 3


def test_reorder_is_detected(log):
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    _write(log, lines)
    result = log.check()
    assert not result["ok"] and result["first_bad_line"] == 2


def test_deleted_head_and_garbage_line_are_detected(log):
    log.store.delete(log.head_key)
    assert not log.check()["ok"]
    log.append("again", {})  # re-anchors the head
    assert log.check()["ok"]
    lines = _lines(log)
    lines[0] = lines[0][:-5]
    _write(log, lines)
    result = log.check()
    assert not result["ok"] and "not valid JSON" in result["message"] and result["first_bad_line"] == 1


def test_cli_audit_verify_and_show(log, tmp_path):
    runner = CliRunner()
    store = str(tmp_path / "store")
    ok = runner.invoke(app, ["audit", "verify", "--store", store])
    assert ok.exit_code == 0 and "intact: 5 records" in ok.output
    shown = runner.invoke(app, ["audit", "show", "--json", "--limit", "2", "--store", store])
    assert shown.exit_code == 0
    assert [json.loads(x)["seq"] for x in shown.output.splitlines()] == [4, 5]
    table = runner.invoke(app, ["audit", "show", "--store", store])
    assert table.exit_code == 0 and "event_4" in table.output
    lines = _lines(log)
    lines[3], lines[4] = lines[4], lines[3]
    _write(log, lines)
    bad = runner.invoke(app, ["audit", "verify", "--store", store])
    assert bad.exit_code == 1 and "line 4" in bad.output and "TAMPERED" in bad.output
