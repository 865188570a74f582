"""`AuditLog.check`: walk the per-record chain, check every hash, link, signature and the head.

Kept apart from `audit.py` (which writes) so that each rule of what counts as tampering is
in one place. The first problem found is reported with the record's seq and event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from civicml.governance.audit_format import GENESIS, LEGACY_KEY, RECORDS_PREFIX, _digest, _head_message, record_key
from civicml.governance.signing import PublicKey, trusted_key

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


class _Broken(Exception):
    """The first problem of a chain: the seq it is at (None: the log as a whole) and what is wrong."""

    def __init__(self, seq: Any, message: str) -> None:
        super().__init__(message)
        self.seq = seq
        self.message = message


@dataclass
class _Walk:
    """What the walk over the records knows and has counted so far."""

    keys: dict[str, PublicKey]
    must_sign: bool
    first_signed: int | None
    n: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"signed": 0, "unsigned": 0, "legacy": 0})


def _check_signature(rec: dict[str, Any], where: str, walk: _Walk) -> None:
    """Count the record as signed, legacy or unsigned; raise `_Broken` for a forged or unsigned one."""
    sig, seq = rec.get("sig"), rec.get("seq")
    if sig is not None:
        key = trusted_key(walk.keys, sig)
        if key is None:
            raise _Broken(
                seq,
                f"{where}: signed with key {sig.get('key_id') if isinstance(sig, dict) else sig!r}, which is not "
                "a trusted key (not pinned in audit.public_keys, or for HMAC not held by this reader) — the record "
                "was forged or its key was swapped",
            )
        if not key.verify(rec["hash"].encode(), sig.get("value", "")):
            raise _Broken(seq, f"{where}: its signature does not verify — the record was forged or edited")
        walk.counts["signed"] += 1
    elif walk.first_signed is not None and walk.n < walk.first_signed:
        walk.counts["legacy"] += 1
    elif walk.must_sign or walk.counts["signed"]:
        raise _Broken(
            seq, f"{where}: unsigned, but the log is signed — appended by a writer without the signing key (forged)"
        )
    else:
        walk.counts["unsigned"] += 1


def _check_record(rec: dict[str, Any], prev_hash: str, walk: _Walk) -> None:
    """One record (the `walk.n`-th): its place in the chain, its hash and its signature."""
    n = walk.n
    if "_bad" in rec:
        raise _Broken(n, f"record {rec['_key']}: {rec['_bad']}")
    seq = rec.get("seq")
    where = f"record seq {seq} (event {rec.get('event')!r})"
    if seq != n or record_key(n) != RECORDS_PREFIX + rec["_key"]:
        raise _Broken(n, f"{where}: expected seq {n} — a record was deleted, inserted or reordered here")
    if rec.get("prev_hash") != prev_hash:
        raise _Broken(
            seq,
            f"{where}: prev_hash does not match the hash of the record before it — "
            "the previous record was edited, or records were reordered",
        )
    body = {k: v for k, v in rec.items() if k != "_key"}
    if _digest(body) != rec.get("hash"):
        raise _Broken(seq, f"{where}: contents do not match its hash — this record was edited")
    _check_signature(rec, where, walk)


def _check_head(log: AuditLog, head: dict[str, Any] | None, records: list[dict[str, Any]], walk: _Walk) -> str | None:
    """The head against the last records; a note when records follow it (an append that stopped early)."""
    n = walk.n
    if head is None:
        if n:
            raise _Broken(
                None, f"the log has {n} records but its head ({log.head_key}) is missing — the head was deleted"
            )
        return None
    hseq = head.get("seq")
    if not isinstance(hseq, int) or hseq > n:
        if isinstance(hseq, int):
            raise _Broken(
                n + 1, f"the log ends at seq {n} but its head says seq {hseq} — records after seq {n} were deleted"
            )
        raise _Broken(None, f"the head ({log.head_key}) is damaged: seq {hseq!r}")
    expected_hash = records[hseq - 1].get("hash") if hseq else GENESIS
    if expected_hash != head.get("hash"):
        raise _Broken(
            hseq, f"the head (seq {hseq}) does not match record seq {hseq} — the head or that record was edited"
        )
    hsig = head.get("sig")
    if hsig is not None or walk.counts["signed"] or walk.must_sign:
        key = trusted_key(walk.keys, hsig)
        if (
            key is None
            or not isinstance(hsig, dict)
            or not key.verify(_head_message(hseq, head["hash"]), hsig.get("value", ""))
        ):
            raise _Broken(hseq, f"the head (seq {hseq}) is unsigned or badly signed — it was rewritten without the key")
    if hseq < n:
        return f"note: {n - hseq} record(s) after the head (an append stopped before moving the head)"
    return None


def _intact_message(n: int, head_hash: str, counts: dict[str, int], notes: list[str]) -> str:
    """The one-paragraph summary of an intact log."""
    summary = f"audit log intact: {n} records, head {head_hash[:16]}…"
    detail = []
    if counts["signed"]:
        detail.append(f"{counts['signed']} signed")
    if counts["legacy"]:
        detail.append(f"{counts['legacy']} unsigned from before signing began, anchored by the first signed record")
    if counts["unsigned"]:
        detail.append(f"{counts['unsigned']} unsigned (no signing key configured: tamper-evident, not forgery-proof)")
    message = summary + (f" ({', '.join(detail)})" if detail else "")
    return message + ("".join(f"\n{note}" for note in notes) if n else "")


def _walk_chain(
    log: AuditLog, records: list[dict[str, Any]], head: dict[str, Any] | None, notes: list[str], walk: _Walk
) -> tuple[str, list[str]]:
    """Check the whole log; return the last record's hash and the notes. Raises `_Broken` at the first problem."""
    if log.store.exists(LEGACY_KEY):
        raise _Broken(
            None, f"the old single-file audit log {LEGACY_KEY} is not migrated yet: run `civicml audit migrate`"
        )
    problems = [p for p in notes if p.startswith("problem:")]
    if problems:
        raise _Broken(None, problems[0].removeprefix("problem: "))
    prev_hash = GENESIS
    for rec in records:
        walk.n += 1
        _check_record(rec, prev_hash, walk)
        prev_hash = rec["hash"]
    note = _check_head(log, head, records, walk)
    return prev_hash, [*notes, *([note] if note else [])]


def check_chain(log: AuditLog) -> dict[str, Any]:
    """Verify `log`; see `AuditLog.check` for the result's keys."""

    records, head = _load(log)
    # Unsigned records before the first signed one (an old log, or a store that started signing
    # later) are anchored by it: its signed hash covers their chain. After it, unsigned is forged.
    first_signed = next((i for i, r in enumerate(records, 1) if "_bad" not in r and r.get("sig") is not None), None)
    keys, notes = log.trusted_keys()
    walk = _Walk(keys=keys, must_sign=bool(log.pinned), first_signed=first_signed)
    try:
        prev_hash, notes = _walk_chain(log, records, head, notes, walk)
    except _Broken as broken:
        return {
            "ok": False,
            "message": broken.message,
            "records": walk.n,
            "first_bad_line": broken.seq,
            "first_bad_seq": broken.seq,
            "head_hash": head.get("hash") if head else None,
            **walk.counts,
        }
    # Callers that verify and then look records up (trust checks) reuse what was just read and checked.
    log.last_checked_records = [{k: v for k, v in r.items() if k != "_key"} for r in records]
    return {
        "ok": True,
        "message": _intact_message(walk.n, prev_hash, walk.counts, notes),
        "records": walk.n,
        "first_bad_line": None,
        "first_bad_seq": None,
        "head_hash": prev_hash if walk.n else None,
        **walk.counts,
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
