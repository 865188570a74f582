"""One promotion function: every champion/challenger change, its checks, its evidence and its A/B effects."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from civicml.governance.audit import AuditLog
from civicml.governance.promotion import PromotionError, promote
from civicml.governance.trust import TrustError, check_version, commit_version
from civicml.serving.routing import current_routing
from civicml.storage.registry import AliasConflict, Registry
from civicml.storage.store import LocalStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reg(tmp_path, monkeypatch):
    monkeypatch.delenv("CIVICML_ROUTING_FILE", raising=False)
    registry = Registry(LocalStore(tmp_path / "store"))
    for v in ("v1", "v2", "v3"):
        commit_version(registry, v, {}, {"status": "approved", "gate": {"decision": "deploy", "reason": "ok"}})
    commit_version(registry, "vp", {}, {"status": "pending_approval", "gate": {"decision": "pending_approval"}})
    return registry


def test_champion_and_challenger_move_only_inside_the_promotion_function():
    """`git grep`: the alias primitive is called in promotion.py only; alias keys appear only in the registry
    and its alias book (storage/aliases.py, which writes them)."""
    calls = subprocess.run(
        ["git", "grep", "-n", r"\.set_alias(", "--", "civicml", "components", "pipelines"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    assert calls and {line.split(":")[0] for line in calls} == {"civicml/governance/promotion.py"}, calls
    writers = subprocess.run(
        ["git", "grep", "-n", "-E", r"aliases/", "--", "civicml"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.splitlines()
    assert {line.split(":")[0] for line in writers} == {"civicml/storage/aliases.py", "civicml/storage/registry.py"}


def test_only_approved_versions_are_promoted(reg):
    with pytest.raises(PromotionError, match="'pending_approval'"):
        promote(reg, "vp", by="a", reason="r")
    assert reg.get_alias("champion") is None


def test_a_champion_that_moved_is_never_replaced_unseen(reg):
    """Two runs compared with the same old champion: the later one is refused, not silently promoted."""
    promote(reg, "v1", by="a", reason="first", expected_champion=None)
    promote(reg, "v2", by="run-2", reason="compared with v1", expected_champion="v1")
    with pytest.raises(AliasConflict, match="compared with champion v1, but the champion is v2"):
        promote(reg, "v3", by="run-3", reason="compared with v1", expected_champion="v1")
    assert reg.get_alias("champion") == "v2"


def test_every_move_has_its_intent_recorded_before_it(reg):
    promote(reg, "v1", by="a", reason="r")
    promote(reg, "v2", by="b", reason="r")
    records = {r["seq"]: r for r in AuditLog(reg.store).records()}
    for move in reg.alias_history("champion"):
        intent = records[move["audit_seq"]]
        assert intent["event"] == "alias_move_intent" and intent["payload"]["to"] == move["to"]
        moved = [r for r in records.values() if r["event"] == "alias_moved" and r["payload"]["seq"] == move["seq"]]
        assert len(moved) == 1 and moved[0]["seq"] > intent["seq"]


def test_a_new_champion_ends_the_ab_test_and_a_challenger_starts_one(reg):
    promote(reg, "v1", by="a", reason="r")
    promote(reg, "v2", by="a", reason="r", role="challenger", share=0.2)
    r = current_routing(reg)
    assert (r.champion, r.challenger, r.challenger_share) == ("v1", "v2", 0.2)
    promote(reg, "v3", by="approver", reason="approved")  # e.g. the approval path
    r = current_routing(reg)
    assert (r.champion, r.challenger, r.effective_share) == ("v3", None, 0.0)
    events = [rec["event"] for rec in AuditLog(reg.store).records()]
    assert "ab_started" in events and "ab_ended" in events
    cleared = [m for m in reg.alias_history("challenger") if m["to"] is None]
    assert len(cleared) == 1 and cleared[0]["audit_seq"]  # clearing the challenger is audited too


def test_edited_manifest_status_is_refused_on_deploy_and_load(reg):
    """Issue 12 item 4: pending_approval -> approved by editing the manifest is caught against the audit chain."""
    key = "versions/vp/manifest.json"
    man = json.loads(reg.store.get_bytes(key))
    man["status"] = "approved"
    man["gate"] = {"decision": "deploy", "reason": "edited"}
    reg.store.put_bytes(key, json.dumps(man, indent=2, sort_keys=True).encode())
    with pytest.raises(TrustError, match="manifest was changed after commit"):
        promote(reg, "vp", by="a", reason="r")
    with pytest.raises(TrustError):
        check_version(reg, "vp")
    assert reg.get_alias("champion") is None


def test_manifest_without_evidence_and_forged_decision_are_refused(reg):
    reg.commit("v-sneaky", {}, {"status": "approved"})  # written without going through commit_version
    with pytest.raises(TrustError, match="no commit record"):
        promote(reg, "v-sneaky", by="a", reason="r")
    reg.store.put_bytes("approvals/vp.json", json.dumps({"decision": "approved", "by": "nobody"}).encode())
    with pytest.raises(TrustError, match="no matching record"):
        check_version(reg, "vp")


def test_signed_manifest_signature_is_checked(tmp_path, monkeypatch):
    from civicml.governance.signing import generate_ed25519

    pem, public = generate_ed25519()
    monkeypatch.setenv("CIVICML_AUDIT_SIGNING_KEY", pem)
    registry = Registry(LocalStore(tmp_path / "s"))
    man = commit_version(registry, "v1", {}, {"status": "approved"})
    assert man["signature"]["alg"] == "ed25519"
    audit = AuditLog(registry.store, signer=None, pinned_keys=[public])
    assert check_version(registry, "v1", audit=audit, chain=True)["version"] == "v1"
    other, _ = generate_ed25519()
    monkeypatch.setenv("CIVICML_AUDIT_SIGNING_KEY", other)
    commit_version(registry, "v2", {}, {"status": "approved"})  # signed by a key that is not pinned
    with pytest.raises(TrustError, match="does not verify"):
        check_version(registry, "v2", audit=audit)


def test_a_crash_at_any_write_of_a_promotion_leaves_no_move_without_its_record(tmp_path, monkeypatch):
    """Issue 12 item 5: crash the deploy at its 1st, 2nd, ... write; no alias ever moved without evidence."""

    class Crash(BaseException):
        pass

    for crash_at in range(1, 14):
        monkeypatch.delenv("CIVICML_ROUTING_FILE", raising=False)
        registry = Registry(LocalStore(tmp_path / f"s{crash_at}"))
        commit_version(registry, "v1", {}, {"status": "approved"})
        commit_version(registry, "v2", {}, {"status": "approved"})
        promote(registry, "v1", by="a", reason="r")
        promote(registry, "v2", by="a", reason="r", role="challenger", share=0.5)
        writes = {"n": 0}
        store = registry.store
        for name in ("create", "put_bytes", "replace"):
            real = getattr(store, name)

            def counted(*args, _real=real, _writes=writes, _at=crash_at, **kwargs):
                _writes["n"] += 1
                if _writes["n"] == _at:
                    raise Crash
                return _real(*args, **kwargs)

            monkeypatch.setattr(store, name, counted)
        try:
            promote(registry, "v2", by="a", reason="promote challenger")
        except Crash:
            pass
        monkeypatch.undo()
        records = AuditLog(registry.store).records()
        intents = {(r["payload"]["alias"], r["payload"]["seq"]) for r in records if r["event"] == "alias_move_intent"}
        for alias in ("champion", "challenger"):
            for move in registry.alias_history(alias):
                assert (alias, move["seq"]) in intents, (crash_at, alias, move)
        assert AuditLog(registry.store).verify()[0]
