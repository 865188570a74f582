"""Append-only, hash-chained audit log stored as JSON lines in the object store.

Each record holds its sequence number and the sha256 of the previous record, and
its own hash covers both. So:

* editing a line breaks that line's hash (or, if the editor recomputed it, the
  next line's `prev_hash`);
* deleting, inserting or reordering lines breaks the `seq` run and `prev_hash`;
* deleting or editing the *last* lines would leave a valid shorter chain, so the
  latest head (`seq`, `hash`) is also written to a second object
  (`audit/head.json`) and `verify` checks the log ends exactly there.

This is tamper-*evident* against anyone who edits the log without rewriting the
whole chain and the head. Someone with write access to the bucket can rewrite
both; for protection against that, copy the head hash that `civicml audit
verify` prints somewhere they cannot write (a ticket, the KFP run's output) and
compare later, or enable object lock/versioning on the bucket.

Concurrency: an append is read-modify-write of one object. On a local directory
appends are serialised with an exclusive lock file. On S3/MinIO two writers
appending at the same moment can lose one record (last writer wins); the chain
stays valid, so `verify` cannot notice. In civicml, appends come from one
pipeline run's steps (sequential) and from people running the CLI, so
collisions are rare; a per-record object scheme with conditional create
(`If-None-Match: *`) would remove the race but needs that primitive in `Store`
— noted as a follow-up.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

from civicml.storage.registry import utcnow
from civicml.storage.store import Store

AUDIT_KEY = "audit/log.jsonl"
HEAD_KEY = "audit/head.json"
GENESIS = "0" * 64


def _digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def default_actor() -> str:
    """Who is acting: `CIVICML_ACTOR`, else the OS user."""
    try:
        return os.environ.get("CIVICML_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class AuditLog:
    """The project's audit log."""

    def __init__(self, store: Store, key: str = AUDIT_KEY, head_key: str = HEAD_KEY):
        self.store = store
        self.key = key
        self.head_key = head_key

    def _text(self) -> str:
        try:
            return self.store.get_bytes(self.key).decode()
        except FileNotFoundError:
            return ""

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        path = self.store.local_path(self.key)
        if path is None:  # remote store: see the module docstring
            yield
            return
        # ".tmp-" prefix: LocalStore.list() hides such files, so the lock is never mistaken for an object.
        lock = path.parent / f".tmp-{path.name}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def records(self) -> list[dict[str, Any]]:
        """All records, oldest first (not verified; see `verify`). Unparseable lines are skipped."""
        out = []
        for line in self._text().splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def head(self) -> dict[str, Any] | None:
        """The anchored head `{seq, hash, at}`, or None for an empty log."""
        try:
            return json.loads(self.store.get_bytes(self.head_key))
        except FileNotFoundError:
            return None

    def append(self, event: str, payload: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
        """Append one event and return the stored record.

        Args:
            event: Event name, e.g. `gate_decided`, `approval_recorded`.
            payload: JSON-able details.
            actor: Who acted; default `default_actor()`.
        """
        with self._lock():
            text = self._text()
            lines = [line for line in text.splitlines() if line.strip()]
            prev = json.loads(lines[-1]) if lines else None
            record = {
                "seq": (prev["seq"] + 1) if prev else 1,
                "at": utcnow(),
                "event": event,
                "actor": actor or default_actor(),
                "payload": payload,
                "prev_hash": prev["hash"] if prev else GENESIS,
            }
            record["hash"] = _digest(record)
            lines.append(json.dumps(record, sort_keys=True, default=str))
            self.store.put_bytes(self.key, ("\n".join(lines) + "\n").encode())
            self.store.put_bytes(
                self.head_key, json.dumps({"seq": record["seq"], "hash": record["hash"], "at": record["at"]}).encode()
            )
        return record

    def verify(self) -> tuple[bool, str]:
        """Check the whole chain and the head; returns (ok, message naming the first bad record)."""
        result = self.check()
        return result["ok"], result["message"]

    def check(self) -> dict[str, Any]:
        """Like `verify`, with details: `{ok, message, records, first_bad_line, first_bad_seq, head_hash}`."""
        text = self._text()
        head = self.head()

        def bad(lineno: int | None, seq: Any, msg: str) -> dict[str, Any]:
            return {
                "ok": False,
                "message": msg,
                "records": n,
                "first_bad_line": lineno,
                "first_bad_seq": seq,
                "head_hash": head.get("hash") if head else None,
            }

        prev_hash = GENESIS
        n = 0
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                return bad(lineno, None, f"line {lineno}: not valid JSON (the record was edited or truncated)")
            if not isinstance(record, dict):
                return bad(lineno, None, f"line {lineno}: not a JSON object (the record was edited)")
            n += 1
            seq = record.get("seq")
            where = f"line {lineno} (seq {seq}, event {record.get('event')!r})"
            if seq != n:
                return bad(lineno, seq, f"{where}: expected seq {n} — a record was deleted, inserted or reordered here")
            if record.get("prev_hash") != prev_hash:
                return bad(
                    lineno,
                    seq,
                    f"{where}: prev_hash does not match the hash of the record before it — "
                    "the previous record was edited, or records were reordered",
                )
            if _digest(record) != record.get("hash"):
                return bad(lineno, seq, f"{where}: contents do not match its hash — this record was edited")
            prev_hash = record["hash"]
        if head is None:
            if n:
                return bad(
                    None,
                    None,
                    f"the log has {n} records but its head ({self.head_key}) is missing — the head was deleted",
                )
        elif head.get("seq") != n or head.get("hash") != prev_hash:
            if isinstance(head.get("seq"), int) and head["seq"] > n:
                msg = (
                    f"the log ends at seq {n} but its head says seq {head['seq']} — records after seq {n} were deleted"
                )
                return bad(None, n + 1, msg)
            msg = (
                f"the last record (seq {n}) does not match the head (seq {head.get('seq')}) — the end of the log "
                "was edited or extended without going through civicml (or an append was interrupted)"
            )
            return bad(None, n, msg)
        return {
            "ok": True,
            "message": f"audit log intact: {n} records, head {prev_hash[:16]}…",
            "records": n,
            "first_bad_line": None,
            "first_bad_seq": None,
            "head_hash": prev_hash if n else None,
        }
