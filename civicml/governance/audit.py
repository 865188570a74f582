"""Append-only, hash-chained, signed audit log: one object per record in the store.

Layout:

    audit/records/<seq, 12 digits>.json   one record each, created if absent, never rewritten
    audit/head.json                      the newest {seq, hash} anyone has appended, signed
    audit/keys/<key id>.json             public keys that signed records (pin them in the config)
    audit/legacy/log.jsonl               the old single-file log, after `civicml audit migrate`

Each record holds its `seq`, the `prev_hash` of the record before it and its own `hash`
over both, and (when this process holds a signing key) a `sig` over that hash. So:

* an edited record no longer matches its hash, or, with a recomputed hash, breaks the
  next record's `prev_hash`; a forger who recomputes every hash and the head still cannot
  sign them: `verify` names the first record whose signature does not check;
* a deleted, inserted or reordered record breaks the `seq` run and `prev_hash`;
* a deleted tail leaves the head pointing past the end (the head is signed, so it
  cannot be rewound without the key);
* a record appended by a writer without the key is unsigned or badly signed;
* a swapped public key in the store is caught by the keys pinned in the config.

Concurrency: an append finds the next seq by listing, then *creates* that record
(`Store.create`: If-None-Match `*` on S3, a hard link on a directory). Of two writers
racing for one seq exactly one wins; the other re-reads and retries with the next seq,
so no record is ever lost or rewritten. An interrupted append either created its record
(whole, atomically) or did not; nothing else changes, so the old chain stays intact.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import random
import time
from typing import Any

from civicml.governance.audit_format import (
    GENESIS,
    HEAD_KEY,
    KEYS_PREFIX,
    LEGACY_ARCHIVE,
    LEGACY_KEY,
    RECORDS_PREFIX,
    _digest,
    _head_message,
    record_key,
)
from civicml.governance.signing import PublicKey, Signer, load_signer, pinned_public_keys, public_key_of
from civicml.storage.base import Store, StoreConflict, StoreError
from civicml.storage.registry import utcnow

AUDIT_KEY = LEGACY_KEY  # older name
_UNSET: Any = object()
APPEND_DEADLINE_SECONDS = 120.0


class AuditError(StoreError):
    """The audit log cannot take a record (a legacy log to migrate, a store too busy)."""


def default_actor() -> str:
    """Who is acting: `CIVICML_ACTOR`, else the OS user."""
    try:
        return os.environ.get("CIVICML_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class AuditLog:
    """The project's audit log.

    Args:
        store: Where the records live.
        signer: Key that signs new records; default: the one in the environment (`load_signer`),
            None to write unsigned records.
        pinned_keys: Public keys `verify` trusts (`audit.public_keys`); default: the environment's.
            With none pinned, the keys stored under `audit/keys/` are trusted (and `verify` says so).
    """

    def __init__(self, store: Store, signer: Signer | None = _UNSET, pinned_keys: list[str] | None = None):
        self.store = store
        self.signer = load_signer() if signer is _UNSET else signer
        self.pinned = pinned_public_keys(pinned_keys)
        self.key = RECORDS_PREFIX
        self.head_key = HEAD_KEY
        self.last_checked_records: list[dict[str, Any]] | None = None

    # -- reading ------------------------------------------------------------------
    def _record_keys(self) -> list[str]:
        return [k for k in self.store.list_keys(RECORDS_PREFIX) if k.endswith(".json")]

    def records(self) -> list[dict[str, Any]]:
        """All records, oldest first (not verified; see `verify`). Unparseable objects are skipped."""
        out = []
        for key in self._record_keys():
            try:
                out.append(json.loads(self.store.get_bytes(key)))
            except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
                continue
        return out

    def head(self) -> dict[str, Any] | None:
        """The anchored head `{seq, hash, at, sig}`, or None for an empty log."""
        try:
            return json.loads(self.store.get_bytes(HEAD_KEY))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _last(self) -> dict[str, Any] | None:
        keys = self._record_keys()
        return json.loads(self.store.get_bytes(keys[-1])) if keys else None

    # -- writing ------------------------------------------------------------------
    def _refuse_legacy(self) -> None:
        if self.store.exists(LEGACY_KEY):
            raise AuditError(
                f"the store {self.store.describe()} still has the old single-file audit log ({LEGACY_KEY}); "
                "migrate it once with `civicml audit migrate` (the migration is itself audited), then retry"
            )

    def append(self, event: str, payload: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
        """Append one event and return the stored record.

        Args:
            event: Event name, e.g. `gate_decided`, `approval_recorded`.
            payload: JSON-able details.
            actor: Who acted; default `default_actor()`.

        Raises:
            AuditError: a legacy log must be migrated first, or other writers kept winning for 2 minutes.
        """
        self._refuse_legacy()
        self._register_key()
        deadline = time.monotonic() + APPEND_DEADLINE_SECONDS
        pause = 0.001
        prev = self._end()
        if prev is None:
            self._genesis_head()
        while True:
            record = self._new_record(prev, event, payload, actor)
            try:
                self.store.create(record_key(record["seq"]), json.dumps(record, sort_keys=True).encode())
                break
            except StoreConflict:  # another writer took this seq: its record is the new end; go again
                if time.monotonic() > deadline:
                    raise AuditError(
                        f"could not append {event!r} to the audit log in {self.store.describe()}: other writers "
                        f"won every attempt for {APPEND_DEADLINE_SECONDS:.0f}s; retry"
                    ) from None
                time.sleep(random.uniform(0, pause))
                pause = min(pause * 2, 0.05)
                prev = self._end(after=record["seq"])
        self._advance_head(record)
        self._hint = record["seq"]
        return record

    def _read_record(self, seq: int) -> dict[str, Any] | None:
        try:
            return json.loads(self.store.get_bytes(record_key(seq)))
        except FileNotFoundError:
            return None

    def _end(self, after: int | None = None) -> dict[str, Any] | None:
        """The newest record, found in O(1) reads: start at a known seq, step forward while records exist.

        Starts from `after` (a seq just seen taken), else the last seq this object appended, else the
        head (which never points past a created record). Falls back to a listing when that start is
        missing (a damaged log), so the append still lands after the true end.
        """
        start = after or getattr(self, "_hint", None)
        if start is None:
            head = self.head() or {}
            start = head.get("seq") if isinstance(head.get("seq"), int) else 0
        prev = self._read_record(start) if start else None
        if start and prev is None:
            return self._last()
        while True:
            nxt = self._read_record((prev or {}).get("seq", 0) + 1)
            if nxt is None:
                return prev
            prev = nxt

    def _new_record(
        self, prev: dict[str, Any] | None, event: str, payload: dict[str, Any], actor: str | None
    ) -> dict[str, Any]:
        record = {
            "seq": (prev["seq"] + 1) if prev else 1,
            "at": utcnow(),
            "event": event,
            "actor": actor or default_actor(),
            "payload": payload,
            "prev_hash": prev["hash"] if prev else GENESIS,
        }
        # Round-trip through JSON so the hash covers exactly what is stored (tuples, dates, ...).
        record = json.loads(json.dumps(record, sort_keys=True, default=str))
        record["hash"] = _digest(record)
        if self.signer is not None:
            record["sig"] = self.signer.sign(record["hash"].encode())
        return record

    def _genesis_head(self) -> None:
        """Anchor an empty log (seq 0) before its first record, so a head exists whenever a record does.

        Otherwise a kill between the first record and its head would look like a deleted head.
        """
        body: dict[str, Any] = {"seq": 0, "hash": GENESIS, "at": utcnow()}
        if self.signer is not None:
            body["sig"] = self.signer.sign(_head_message(0, GENESIS))
        try:
            self.store.create(HEAD_KEY, json.dumps(body, sort_keys=True).encode())
        except StoreConflict:
            pass

    def _advance_head(self, record: dict[str, Any]) -> None:
        """Move the head forward to `record` unless a later append already moved it further."""
        body = {"seq": record["seq"], "hash": record["hash"], "at": record["at"]}
        if self.signer is not None:
            body["sig"] = self.signer.sign(_head_message(record["seq"], record["hash"]))
        data = json.dumps(body, sort_keys=True).encode()
        for _ in range(200):
            try:
                raw, etag = self.store.read(HEAD_KEY)
            except FileNotFoundError:
                try:
                    self.store.create(HEAD_KEY, data)
                    return
                except StoreConflict:
                    continue
            try:
                current = json.loads(raw).get("seq", 0)
            except (json.JSONDecodeError, AttributeError):
                current = 0
            if isinstance(current, int) and current >= record["seq"]:
                return
            try:
                self.store.replace(HEAD_KEY, data, if_match=etag)
                return
            except StoreConflict:
                time.sleep(random.uniform(0, 0.01))
        # Leaving the head behind is safe: verify accepts signed records past the head.

    def _register_key(self) -> None:
        """Store this signer's public key once (so readers without the config can check signatures)."""
        if self.signer is None:
            return
        key = f"{KEYS_PREFIX}{self.signer.key_id.replace(':', '-')}.json"
        if self.store.exists(key):
            return
        body = {"alg": self.signer.alg, "key_id": self.signer.key_id, "public_key": self.signer.public}
        try:
            self.store.create(key, json.dumps(body, sort_keys=True).encode())
        except StoreConflict:
            pass

    # -- keys ---------------------------------------------------------------------
    def stored_keys(self) -> dict[str, dict[str, Any]]:
        """Public keys found under `audit/keys/`, by key id (not trusted when keys are pinned)."""
        out = {}
        for key in self.store.list_keys(KEYS_PREFIX):
            try:
                doc = json.loads(self.store.get_bytes(key))
                out[doc["key_id"]] = doc
            except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
                continue
        return out

    def trusted_keys(self) -> tuple[dict[str, PublicKey], list[str]]:
        """The keys `verify` checks signatures with, and notes/problems about where they came from."""
        from civicml.governance.signing import SigningError, parse_public_key

        notes: list[str] = []
        stored = self.stored_keys()
        keys: dict[str, PublicKey] = dict(self.pinned)
        for key_id, doc in stored.items():
            if key_id in self.pinned or not doc.get("public_key"):
                continue
            try:
                parsed = parse_public_key(doc["public_key"], f"{KEYS_PREFIX}{key_id}")
            except SigningError as err:
                notes.append(f"problem: {err}")
                continue
            if parsed.key_id != key_id:
                notes.append(
                    f"problem: the public key stored as {key_id} is really {parsed.key_id} — "
                    "the public key in the store was swapped"
                )
            elif not self.pinned:
                keys[key_id] = parsed
        if self.signer is not None and self.signer.alg != "ed25519":
            keys[self.signer.key_id] = public_key_of(self.signer)
        if not self.pinned and keys:
            notes.append(
                "note: public keys were read from the store itself; pin them in audit.public_keys "
                "(or CIVICML_AUDIT_PUBLIC_KEYS) so that a store writer cannot swap them"
            )
        return keys, notes

    # -- checking -----------------------------------------------------------------
    def verify(self) -> tuple[bool, str]:
        """Check the whole chain, signatures and the head; returns (ok, message naming the first bad record)."""
        result = self.check()
        return result["ok"], result["message"]

    def check(self) -> dict[str, Any]:
        """Like `verify`, with details: `{ok, message, records, first_bad_line, first_bad_seq, head_hash, ...}`."""
        from civicml.governance.audit_verify import check_chain

        return check_chain(self)


def migrate_legacy(log: AuditLog, actor: str | None = None) -> dict[str, Any]:
    """Move the old single-file log (`audit/log.jsonl`) into one object per record, once; audited.

    Every old record is copied unchanged (same seq, hashes and chain), the old file is kept
    under `audit/legacy/log.jsonl`, and a signed `audit_migrated` record names the old head and
    the sha256 of the old file, so the migrated part stays anchored.

    Raises:
        AuditError: there is nothing to migrate, records already exist, or the old chain does not verify.
    """
    from civicml.governance.audit_verify import check_legacy_text

    store = log.store
    try:
        raw = store.get_bytes(LEGACY_KEY)
    except FileNotFoundError:
        raise AuditError(f"nothing to migrate: {store.describe()} has no old audit log {LEGACY_KEY}") from None
    if log._record_keys():
        raise AuditError(
            f"{store.describe()} has both the old log {LEGACY_KEY} and per-record audit objects; "
            "it was migrated already — move the old file away after checking it"
        )
    records, problem = check_legacy_text(raw.decode(errors="replace"))
    if problem:
        raise AuditError(f"refusing to migrate: the old audit log does not verify: {problem}")
    for rec in records:
        try:
            store.create(record_key(rec["seq"]), json.dumps(rec, sort_keys=True).encode())
        except StoreConflict:
            raise AuditError("another `civicml audit migrate` is running against this store; let it finish") from None
    store.put_bytes(LEGACY_ARCHIVE, raw)
    store.delete(LEGACY_KEY)
    if records:
        log._advance_head(records[-1])
    payload = {
        "legacy_records": len(records),
        "legacy_head": records[-1]["hash"] if records else None,
        "legacy_sha256": hashlib.sha256(raw).hexdigest(),
        "archived_at": LEGACY_ARCHIVE,
    }
    return log.append("audit_migrated", payload, actor=actor)
