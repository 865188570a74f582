"""Where audit records live and how they are hashed: shared by the writer (`audit`) and the checker (`audit_verify`).

In its own module so that neither of the two imports the other (issue 15: no import circle).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

RECORDS_PREFIX = "audit/records/"
HEAD_KEY = "audit/head.json"
KEYS_PREFIX = "audit/keys/"
LEGACY_KEY = "audit/log.jsonl"
LEGACY_ARCHIVE = "audit/legacy/log.jsonl"
GENESIS = "0" * 64


def _digest(record: dict[str, Any]) -> str:
    """sha256 of a record without its `hash` and `sig` (canonical JSON)."""
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _head_message(seq: int, digest: str) -> bytes:
    """The bytes the head's signature covers."""
    return f"civicml.audit.head/v1\x00{seq}\x00{digest}".encode()


def record_key(seq: int) -> str:
    """Object key of the record with sequence number `seq`."""
    return f"{RECORDS_PREFIX}{seq:012d}.json"
