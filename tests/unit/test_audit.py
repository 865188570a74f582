"""Audit log: one object per record, signed; every kind of tampering and forgery is named by `verify`."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time

import pytest
from typer.testing import CliRunner

from civicml.cli import app
from civicml.governance.audit import HEAD_KEY, LEGACY_KEY, AuditLog, _digest, _head_message, record_key
from civicml.governance.signing import generate_ed25519, parse_signing_key
from civicml.storage.store import LocalStore


@pytest.fixture(scope="module")
def keypair():
    return generate_ed25519()


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store")


@pytest.fixture
def log(store):
    """Five unsigned records (a store without a signing key)."""
    audit = AuditLog(store, signer=None)
    for i in range(5):
        audit.append(f"event_{i}", {"i": i}, actor="tester")
    return audit


@pytest.fixture
def signed(store, keypair):
    """Five records signed with the key; verified against the pinned public key."""
    pem, public = keypair
    writer = AuditLog(store, signer=parse_signing_key(pem, "test key"))
    for i in range(5):
        writer.append(f"event_{i}", {"i": i}, actor="tester")
    return AuditLog(store, signer=None, pinned_keys=[public])


def _rec(audit: AuditLog, seq: int) -> dict:
    return json.loads(audit.store.get_bytes(record_key(seq)))


def _put(audit: AuditLog, seq: int, rec: dict) -> None:
    audit.store.put_bytes(record_key(seq), json.dumps(rec, sort_keys=True).encode())


def test_one_object_per_record_and_intact_log_verifies(log):
    ok, msg = log.verify()
    assert ok and "5 records" in msg
    assert [r["seq"] for r in log.records()] == [1, 2, 3, 4, 5]
    assert log.store.list_keys("audit/records/") == [record_key(i) for i in range(1, 6)]
    assert log.head()["hash"] == log.records()[-1]["hash"]


def test_edit_is_detected(log):
    rec = _rec(log, 3)
    rec["payload"]["i"] = 99
    _put(log, 3, rec)
    result = log.check()
    assert not result["ok"] and result["first_bad_seq"] == 3 and "edited" in result["message"]


def test_unsigned_edit_with_recomputed_hash_breaks_the_next_link(log):
    rec = _rec(log, 2)
    rec["actor"] = "someone else"
    rec["hash"] = _digest(rec)
    _put(log, 2, rec)
    result = log.check()
    assert not result["ok"] and result["first_bad_seq"] == 3 and "prev_hash" in result["message"]


def test_delete_in_the_middle_and_garbage_are_detected(log):
    log.store.delete(record_key(2))
    result = log.check()
    assert not result["ok"] and result["first_bad_seq"] == 2 and "deleted, inserted or reordered" in result["message"]
    log.store.put_bytes(record_key(2), b'{"seq": 2, "trunc')
    result = log.check()
    assert not result["ok"] and "not valid JSON" in result["message"]


def test_deleted_head_is_detected(log):
    log.store.delete(HEAD_KEY)
    result = log.check()
    assert not result["ok"] and "head" in result["message"] and "deleted" in result["message"]


# -- forgery: a writer of the store who does not hold the signing key ---------------------------------


def test_forged_edit_with_recomputed_hashes_and_head_is_named(signed):
    """The forger edits seq 2, recomputes every later hash and the head, and keeps the old signatures."""
    prev = None
    for seq in range(1, 6):
        rec = _rec(signed, seq)
        if seq == 2:
            rec["payload"]["i"] = 1000
        if prev is not None:
            rec["prev_hash"] = prev
        rec["hash"] = _digest(rec)
        _put(signed, seq, rec)
        prev = rec["hash"]
    head = json.loads(signed.store.get_bytes(HEAD_KEY))
    signed.store.put_bytes(HEAD_KEY, json.dumps({**head, "hash": prev}).encode())
    result = signed.check()
    assert not result["ok"] and result["first_bad_seq"] == 2
    assert "seq 2" in result["message"] and "signature does not verify" in result["message"]


def test_record_appended_without_the_signing_key_is_named(signed):
    AuditLog(signed.store, signer=None).append("approval_recorded", {"version": "v9"}, actor="intruder")
    result = signed.check()
    assert not result["ok"] and result["first_bad_seq"] == 6
    assert "seq 6" in result["message"] and "without the signing key" in result["message"]
    # Also without pinned keys: once a log is signed, an unsigned tail is refused.
    assert not AuditLog(signed.store, signer=None).check()["ok"]


def test_record_signed_with_another_key_is_named(signed):
    other_pem, _ = generate_ed25519()
    AuditLog(signed.store, signer=parse_signing_key(other_pem, "forger")).append("x", {}, actor="intruder")
    result = signed.check()
    assert not result["ok"] and result["first_bad_seq"] == 6 and "not a trusted key" in result["message"]


def test_deleted_tail_is_named(signed):
    signed.store.delete(record_key(5))
    signed.store.delete(record_key(4))
    result = signed.check()
    assert not result["ok"] and result["first_bad_seq"] == 4 and "records after seq 3 were deleted" in result["message"]
    # Rewinding the head to seq 3 needs the key: an unsigned or re-used signature is refused.
    head = json.loads(signed.store.get_bytes(HEAD_KEY))
    rec3 = _rec(signed, 3)
    signed.store.put_bytes(HEAD_KEY, json.dumps({**head, "seq": 3, "hash": rec3["hash"]}).encode())
    result = signed.check()
    assert not result["ok"] and "head (seq 3) is unsigned or badly signed" in result["message"]


def test_swapped_public_key_is_detected(signed, keypair):
    """The forger re-signs the whole chain with their own key and puts their public key in the store."""
    forger_pem, forger_public = generate_ed25519()
    forger = parse_signing_key(forger_pem, "forger")
    for key in signed.store.list_keys("audit/keys/"):
        signed.store.delete(key)
    for seq in range(1, 6):
        rec = _rec(signed, seq)
        rec["sig"] = forger.sign(rec["hash"].encode())
        _put(signed, seq, rec)
    head = json.loads(signed.store.get_bytes(HEAD_KEY))
    head["sig"] = forger.sign(_head_message(head["seq"], head["hash"]))
    signed.store.put_bytes(HEAD_KEY, json.dumps(head).encode())
    AuditLog(signed.store, signer=forger)._register_key()
    # Against the pinned key the very first record is named.
    result = signed.check()
    assert not result["ok"] and result["first_bad_seq"] == 1 and "not a trusted key" in result["message"]
    # A stored key file whose content is another key than its id says is caught even without pinning.
    doc = json.loads(signed.store.get_bytes(signed.store.list_keys("audit/keys/")[0]))
    doc["key_id"] = parse_signing_key(keypair[0], "k").key_id
    signed.store.put_bytes(f"audit/keys/{doc['key_id'].replace(':', '-')}.json", json.dumps(doc).encode())
    unpinned = AuditLog(signed.store, signer=None).check()
    assert not unpinned["ok"] and "swapped" in unpinned["message"]


def test_key_rotation_keeps_old_records_verifiable(store):
    old_pem, old_public = generate_ed25519()
    new_pem, new_public = generate_ed25519()
    for pem in (old_pem, new_pem):
        writer = AuditLog(store, signer=parse_signing_key(pem, "k"))
        for i in range(3):
            writer.append("e", {"i": i})
    ok, msg = AuditLog(store, signer=None, pinned_keys=[old_public, new_public]).verify()
    assert ok and "6 signed" in msg
    ok, msg = AuditLog(store, signer=None, pinned_keys=[new_public]).verify()
    assert not ok and "seq 1" in msg  # dropping the old key from the config makes its records unverifiable


def test_hmac_fallback_signs_and_verifies(store):
    import base64

    key = "hmac:" + base64.b64encode(os.urandom(32)).decode()
    writer = AuditLog(store, signer=parse_signing_key(key, "k"))
    writer.append("e", {})
    assert writer.verify()[0]
    # A reader without the HMAC secret cannot check (and so cannot forge) the signatures.
    ok, msg = AuditLog(store, signer=None).verify()
    assert not ok and "not a trusted key" in msg


# -- races and interruptions ------------------------------------------------------------------------


def _append_forever(root: str) -> None:
    audit = AuditLog(LocalStore(root), signer=None)
    while True:
        audit.append("tick", {"pid": os.getpid(), "pad": "x" * 2000})


def test_kill_9_during_appends_leaves_the_old_chain_intact(tmp_path):
    """Issue 12 item 7: 20 seeded kill -9 during appends; every time the chain verifies and nothing heals."""
    rng = random.Random(7)
    root = str(tmp_path / "store")
    ctx = multiprocessing.get_context("fork")
    counts = []
    for _ in range(20):
        proc = ctx.Process(target=_append_forever, args=(root,))
        proc.start()
        time.sleep(rng.uniform(0.01, 0.15))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        result = AuditLog(LocalStore(root), signer=None).check()
        assert result["ok"], result["message"]
        counts.append(result["records"])
    assert counts == sorted(counts) and counts[-1] > 20  # the log only grew; no record was rewritten
    leftovers = [p.name for p in (tmp_path / "store" / "audit" / "records").iterdir() if p.name.startswith(".tmp-")]
    assert all(name.startswith(".tmp-") for name in leftovers)  # ignored by list and verify


# -- the old single-file log --------------------------------------------------------------------------


def _legacy_log(store: LocalStore, n: int) -> None:
    from civicml.governance.audit import GENESIS

    lines, prev = [], GENESIS
    for seq in range(1, n + 1):
        rec = {"seq": seq, "at": "2026-01-01T00:00:00+00:00", "event": "old", "actor": "a", "payload": {}}
        rec["prev_hash"] = prev
        rec["hash"] = _digest(rec)
        prev = rec["hash"]
        lines.append(json.dumps(rec, sort_keys=True))
    store.put_bytes(LEGACY_KEY, ("\n".join(lines) + "\n").encode())


def test_legacy_log_is_migrated_once_by_a_command(store, tmp_path, keypair, monkeypatch):
    _legacy_log(store, 4)
    with pytest.raises(Exception, match="audit migrate"):
        AuditLog(store, signer=None).append("new", {})
    monkeypatch.setenv("CIVICML_AUDIT_SIGNING_KEY", keypair[0])
    runner = CliRunner()
    out = runner.invoke(app, ["audit", "migrate", "--store", str(tmp_path / "store")])
    assert out.exit_code == 0 and "migrated 4 records" in out.output
    records = AuditLog(store).records()
    assert [r["event"] for r in records] == ["old"] * 4 + ["audit_migrated"] and "sig" in records[-1]
    assert store.exists("audit/legacy/log.jsonl") and not store.exists(LEGACY_KEY)
    ok, msg = AuditLog(store, pinned_keys=[keypair[1]]).verify()
    assert ok and "4 unsigned from before signing began" in msg
    again = runner.invoke(app, ["audit", "migrate", "--store", str(tmp_path / "store")])
    assert again.exit_code == 1 and "nothing to migrate" in again.output


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
    r4, r5 = _rec(log, 4), _rec(log, 5)
    _put(log, 4, r5)
    _put(log, 5, r4)
    bad = runner.invoke(app, ["audit", "verify", "--store", store])
    assert bad.exit_code == 1 and "seq" in bad.output and "TAMPERED" in bad.output


def test_cli_keygen_writes_a_private_key_and_prints_the_public_one(tmp_path):
    out = CliRunner().invoke(app, ["audit", "keygen", "--out", str(tmp_path / "k.pem")])
    assert out.exit_code == 0 and "ed25519:" in out.output
    assert oct((tmp_path / "k.pem").stat().st_mode & 0o777) == "0o600"
    assert parse_signing_key((tmp_path / "k.pem").read_text(), "k").alg == "ed25519"
