"""`AuditLog.check`: walk the per-record chain, check every hash, link, signature and the head.

Kept apart from `audit.py` (which writes) so that each rule of what counts as tampering is
in one place. The first problem found is reported with the record's seq and event.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from civicml.governance.audit_format import GENESIS, LEGACY_KEY, RECORDS_PREFIX, _digest, _head_message, record_key

if TYPE_CHECKING:
    from civicml.governance.audit import AuditLog


def _load(log: AuditLog) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Parsed records (or `{"_bad": message, "_key": key}` for an unreadable one), in key order."""

    # The head first: it only ever points at a record already created, so every record up to it is
    # in the listing that follows even while other writers append (the other order races them).
    head = log.head()
    out: list[dict[str, Any]] = []
    for key in log._record_keys():
        try:
            rec = json.loads(log.store.get_bytes(key))
        except FileNotFoundError:
            continue
        except (json.JSONDecodeError, UnicodeDecodeError):
            out.append({"_bad": "not valid JSON (the record was edited or truncated)", "_key": key})
            continue
        if not isinstance(rec, dict):
            out.append({"_bad": "not a JSON object (the record was edited)", "_key": key})
            continue
        out.append({**rec, "_key": key[len(RECORDS_PREFIX) :]})
    return out, head


def check_chain(log: AuditLog) -> dict[str, Any]:  # noqa: C901 - one walk, one rule per branch
    """Verify `log`; see `AuditLog.check` for the result's keys."""

    records, head = _load(log)
    keys, notes = log.trusted_keys()
    n = 0
    state = {"signed": 0, "unsigned": 0, "legacy": 0}

    def bad(seq: Any, msg: str) -> dict[str, Any]:
        return {
            "ok": False,
            "message": msg,
            "records": n,
            "first_bad_line": seq,
            "first_bad_seq": seq,
            "head_hash": head.get("hash") if head else None,
            **state,
        }

    if log.store.exists(LEGACY_KEY):
        return bad(None, f"the old single-file audit log {LEGACY_KEY} is not migrated yet: run `civicml audit migrate`")
    problems = [p for p in notes if p.startswith("problem:")]
    if problems:
        return bad(None, problems[0].removeprefix("problem: "))
    # Unsigned records before the first signed one (an old log, or a store that started signing
    # later) are anchored by it: its signed hash covers their chain. After it, unsigned is forged.
    first_signed = next((i for i, r in enumerate(records, 1) if "_bad" not in r and r.get("sig") is not None), None)
    must_sign = bool(log.pinned)
    prev_hash = GENESIS
    for rec in records:
        n += 1
        if "_bad" in rec:
            return bad(n, f"record {rec['_key']}: {rec['_bad']}")
        seq = rec.get("seq")
        where = f"record seq {seq} (event {rec.get('event')!r})"
        if seq != n or record_key(n) != RECORDS_PREFIX + rec["_key"]:
            return bad(n, f"{where}: expected seq {n} — a record was deleted, inserted or reordered here")
        if rec.get("prev_hash") != prev_hash:
            return bad(
                seq,
                f"{where}: prev_hash does not match the hash of the record before it — "
                "the previous record was edited, or records were reordered",
            )
        body = {k: v for k, v in rec.items() if k != "_key"}
        if _digest(body) != rec.get("hash"):
            return bad(seq, f"{where}: contents do not match its hash — this record was edited")
        sig = rec.get("sig")
        if sig is not None:
            key = keys.get(sig.get("key_id")) if isinstance(sig, dict) else None
            if key is None:
                return bad(
                    seq,
                    f"{where}: signed with key {sig.get('key_id') if isinstance(sig, dict) else sig!r}, which is not "
                    "a trusted key (not pinned in audit.public_keys, or for HMAC not held by this reader) — the record "
                    "was forged or its key was swapped",
                )
            if not key.verify(rec["hash"].encode(), sig.get("value", "")):
                return bad(seq, f"{where}: its signature does not verify — the record was forged or edited")
            state["signed"] += 1
        elif first_signed is not None and n < first_signed:
            state["legacy"] += 1
        elif must_sign or state["signed"]:
            return bad(
                seq,
                f"{where}: unsigned, but the log is signed — appended by a writer without the signing key (forged)",
            )
        else:
            state["unsigned"] += 1
        prev_hash = rec["hash"]
    if head is None:
        if n:
            return bad(None, f"the log has {n} records but its head ({log.head_key}) is missing — the head was deleted")
    else:
        hseq = head.get("seq")
        if not isinstance(hseq, int) or hseq > n:
            if isinstance(hseq, int):
                return bad(
                    n + 1, f"the log ends at seq {n} but its head says seq {hseq} — records after seq {n} were deleted"
                )
            return bad(None, f"the head ({log.head_key}) is damaged: seq {hseq!r}")
        expected_hash = records[hseq - 1].get("hash") if hseq else GENESIS
        if expected_hash != head.get("hash"):
            return bad(
                hseq, f"the head (seq {hseq}) does not match record seq {hseq} — the head or that record was edited"
            )
        hsig = head.get("sig")
        if hsig is not None or state["signed"] or must_sign:
            key = keys.get(hsig.get("key_id")) if isinstance(hsig, dict) else None
            if key is None or not key.verify(_head_message(hseq, head["hash"]), hsig.get("value", "")):
                return bad(
                    hseq, f"the head (seq {hseq}) is unsigned or badly signed — it was rewritten without the key"
                )
        if hseq < n:
            notes.append(f"note: {n - hseq} record(s) after the head (an append stopped before moving the head)")
    # Callers that verify and then look records up (trust checks) reuse what was just read and checked.
    log.last_checked_records = [{k: v for k, v in r.items() if k != "_key"} for r in records]
    summary = f"audit log intact: {n} records, head {prev_hash[:16]}…"
    detail = []
    if state["signed"]:
        detail.append(f"{state['signed']} signed")
    if state["legacy"]:
        detail.append(f"{state['legacy']} unsigned from before signing began, anchored by the first signed record")
    if state["unsigned"]:
        detail.append(f"{state['unsigned']} unsigned (no signing key configured: tamper-evident, not forgery-proof)")
    message = summary + (f" ({', '.join(detail)})" if detail else "")
    message += "".join(f"\n{note}" for note in notes) if n else ""
    return {
        "ok": True,
        "message": message,
        "records": n,
        "first_bad_line": None,
        "first_bad_seq": None,
        "head_hash": prev_hash if n else None,
        **state,
    }


def check_legacy_text(text: str) -> tuple[list[dict[str, Any]], str | None]:
    """Parse and check an old single-file log: (records, first problem or None)."""

    out: list[dict[str, Any]] = []
    prev = GENESIS
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            return out, f"line {lineno}: not valid JSON"
        if not isinstance(rec, dict) or rec.get("seq") != len(out) + 1 or rec.get("prev_hash") != prev:
            return out, f"line {lineno}: broken chain (seq or prev_hash)"
        if _digest(rec) != rec.get("hash"):
            return out, f"line {lineno}: contents do not match its hash"
        prev = rec["hash"]
        out.append(rec)
    return out, None
