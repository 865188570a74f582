"""Append-only, hash-chained audit log stored as JSON lines in the object store.

Each record holds the sha256 of the previous record, so editing, deleting,
inserting or reordering any line breaks the chain at that line.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from typing import Any

from civicml.storage.registry import utcnow
from civicml.storage.store import Store

AUDIT_KEY = "audit/log.jsonl"
GENESIS = "0" * 64


def _digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def default_actor() -> str:
    """Who is acting: `CIVICML_ACTOR`, else the OS user."""
    try:
        return os.environ.get("CIVICML_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class AuditLog:
    """The project's audit log."""

    def __init__(self, store: Store, key: str = AUDIT_KEY):
        self.store = store
        self.key = key

    def records(self) -> list[dict[str, Any]]:
        """All records, oldest first (not verified; see `verify`)."""
        try:
            text = self.store.get_bytes(self.key).decode()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def append(self, event: str, payload: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
        """Append one event and return the stored record."""
        try:
            text = self.store.get_bytes(self.key).decode()
        except FileNotFoundError:
            text = ""
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
        lines.append(json.dumps(record, sort_keys=True))
        self.store.put_bytes(self.key, ("\n".join(lines) + "\n").encode())
        return record

    def verify(self) -> tuple[bool, str]:
        """Check the whole chain; returns (ok, message naming the first bad record)."""
        try:
            text = self.store.get_bytes(self.key).decode()
        except FileNotFoundError:
            return True, "audit log is empty"
        prev_hash = GENESIS
        n = 0
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                return False, f"line {lineno}: not valid JSON"
            n += 1
            if record.get("seq") != n:
                return False, f"line {lineno} (seq {record.get('seq')}): expected seq {n} (a record was deleted, inserted or reordered)"
            if record.get("prev_hash") != prev_hash:
                return False, f"line {lineno} (seq {record.get('seq')}): prev_hash does not match the previous record"
            if _digest(record) != record.get("hash"):
                return False, f"line {lineno} (seq {record.get('seq')}): contents do not match its hash (record edited)"
            prev_hash = record["hash"]
        return True, f"audit log intact: {n} records"
