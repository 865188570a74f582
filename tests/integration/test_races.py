"""Racing writers: 8 processes append audit records, promote, approve and commit at once (issue 16 must-show).

Every record must be present exactly once, the chain must verify, no alias move may be lost,
each pending version gets exactly one decision, and of 8 commits of one version exactly one wins.
Runs on the local directory store and on the S3 server of `s3_env`.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest
from support import gated_version, tiny_model_dir

from civicml.governance.approval import ApprovalError, get_decision, record_decision
from civicml.governance.audit import AuditLog
from civicml.governance.promotion import promote
from civicml.governance.trust import commit_version
from civicml.storage.registry import Registry, RegistryError
from civicml.storage.store import open_store

WORKERS = 8
RECORDS = 50
PROMOTE_EVERY = 25
PENDING = ("p1", "p2", "p3")
APPROVED = ("a1", "a2", "a3")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("model"))


def _gate_version(registry: Registry, version: str, model_dir, gate_decision: str) -> None:
    gate = {"decision": gate_decision, "reason": f"gate said {gate_decision}", "rules": []}
    status = {"deploy": "approved", "pending_approval": "pending_approval"}[gate_decision]
    gated_version(registry, version, model_dir, gate, status, extra_meta={"gate": gate})


def _worker(uri: str, wid: int, barrier, queue) -> None:
    try:
        _work(uri, wid, barrier, queue)
    except BaseException as err:  # report, so that the parent fails at once with the reason
        queue.put({"wid": wid, "error": f"{type(err).__name__}: {err}"})
        raise


def _work(uri: str, wid: int, barrier, queue) -> None:
    registry = Registry(open_store(uri, explicit=True))
    audit = AuditLog(registry.store)
    out = {"wid": wid, "committed": False, "commit_errors": [], "moves": 0, "decided": [], "refused": []}
    barrier.wait(60)
    try:
        commit_version(registry, "v-twice", {}, {"status": "approved", "by_worker": wid})
        out["committed"] = True
    except RegistryError as err:
        out["commit_errors"].append(str(err))
    for i in range(RECORDS):
        audit.append("race_tick", {"worker": wid, "i": i}, actor=f"w{wid}")
        if i % PROMOTE_EVERY == 0:
            target = APPROVED[(wid + i // PROMOTE_EVERY) % len(APPROVED)]
            promote(registry, target, by=f"w{wid}", reason=f"race {wid}/{i}")
            out["moves"] += 1
        if 1 <= i <= len(PENDING):
            version = PENDING[(wid + i) % len(PENDING)]
            decision = "approved" if wid % 2 == 0 else "rejected"
            try:
                record_decision(registry, version, decision, f"w{wid}", "reviewer", "race")
                out["decided"].append(version)
            except ApprovalError as err:
                out["refused"].append(str(err))
    queue.put(out)


@pytest.fixture(params=["local", "s3"])
def race_store(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_env").uri


def test_eight_racing_writers_lose_nothing(race_store, model_dir, monkeypatch):
    monkeypatch.delenv("CIVICML_AUDIT_SIGNING_KEY", raising=False)
    from civicml.governance.signing import generate_ed25519

    pem, public = generate_ed25519()
    monkeypatch.setenv("CIVICML_AUDIT_SIGNING_KEY", pem)  # the workers sign; verify pins the public key
    registry = Registry(open_store(race_store, explicit=True))
    for v in APPROVED:
        _gate_version(registry, v, model_dir, "deploy")
    for v in PENDING:
        _gate_version(registry, v, model_dir, "pending_approval")
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(race_store, w, barrier, queue)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    try:
        results = [queue.get(timeout=420) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.exitcode is None:
                p.kill()
    assert not [r["error"] for r in results if "error" in r]
    assert [p.exitcode for p in procs] == [0] * WORKERS

    audit = AuditLog(registry.store, signer=None, pinned_keys=[public])
    check = audit.check()
    assert check["ok"], check["message"]
    records = audit.records()
    ticks = Counter((r["payload"]["worker"], r["payload"]["i"]) for r in records if r["event"] == "race_tick")
    assert set(ticks) == {(w, i) for w in range(WORKERS) for i in range(RECORDS)}
    assert set(ticks.values()) == {1}  # every record exactly once

    # Of eight commits of one version exactly one won; the others were told so.
    assert sum(r["committed"] for r in results) == 1
    errors = [e for r in results for e in r["commit_errors"]]
    assert len(errors) == WORKERS - 1 and all("v-twice already exists" in e for e in errors)

    # No alias move lost: every promotion is one move object, each with its audit intent.
    moves = [m for m in registry.alias_history("champion")]
    assert len(moves) == sum(r["moves"] for r in results) == WORKERS * (RECORDS // PROMOTE_EVERY)
    assert [m["seq"] for m in moves] == list(range(1, len(moves) + 1))
    by_seq = {r["seq"]: r for r in records}
    for m in moves:
        intent = by_seq[m["audit_seq"]]
        assert intent["event"] == "alias_move_intent" and intent["payload"]["to"] == m["to"]
    assert all(moves[i]["from"] == moves[i - 1]["to"] for i in range(1, len(moves)))  # a chain, no lost update

    # Each pending version got exactly one decision, and it is the one the audit log recorded.
    decided = Counter(v for r in results for v in r["decided"])
    assert decided == Counter(PENDING)
    for v in PENDING:
        stored = get_decision(registry, v)
        recorded = [r for r in records if r["event"] == "approval_recorded" and r["payload"]["version"] == v]
        assert len(recorded) == 1 and recorded[0]["payload"]["decision"] == stored["decision"]
        assert recorded[0]["payload"]["by"] == stored["by"]
    assert sum(len(r["refused"]) for r in results) == WORKERS * len(PENDING) - len(PENDING)
