"""What a version is made of: the manifest's schema, bytes and hashes, and the names inside it.

Pure functions and the registry's errors, shared by the registry, its alias book and the
governance code that signs and checks manifests. Nothing here talks to a store.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from civicml.storage.hashing import tree_hash  # noqa: F401  (one definition; re-exported for the registry)

MANIFEST_SCHEMA = "civicml.manifest/v1"
ALIASES = ("champion", "challenger")


class RegistryError(RuntimeError):
    """A registry operation is not possible (unknown version, alias, duplicate commit)."""


class AliasConflict(RegistryError):
    """An alias moved since the caller read it (compare-and-swap lost); the message says who moved it."""


class IntegrityError(RegistryError):
    """A stored artifact's sha256 does not match its manifest."""


ANY: Any = object()  # `set_alias(expected=ANY)`: move whatever the alias points to now


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The exact bytes a manifest is stored as (its sha256 is what the audit chain records)."""
    return json.dumps(manifest, indent=2, sort_keys=True).encode()


def manifest_signing_bytes(manifest: dict[str, Any]) -> bytes:
    """What a manifest's signature covers: every field but the signature, canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def utcnow() -> str:
    """Current UTC time as ISO 8601 (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_version_id() -> str:
    """A sortable, unique version id such as `v20261129-104512-3f9a1c`."""
    return datetime.now(timezone.utc).strftime("v%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def parse_manifest(key: str, data: bytes, where: str) -> dict[str, Any]:
    """A manifest read from `key` (in the store described by `where`), checked for shape and version.

    Raises:
        IntegrityError: not JSON, not a manifest, or naming another version than its key.
    """
    try:
        man = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IntegrityError(f"manifest {key} in {where} is not valid JSON ({err}); it was damaged") from None
    if not isinstance(man, dict) or man.get("schema") != MANIFEST_SCHEMA or not isinstance(man.get("artifacts"), dict):
        raise IntegrityError(f"{key} in {where} is not a {MANIFEST_SCHEMA} manifest")
    expected = key.split("/")[1] if key.count("/") == 2 else None
    if not isinstance(man.get("version"), str) or (expected is not None and man["version"] != expected):
        raise IntegrityError(
            f"manifest {key} in {where} names version {man.get('version')!r}, not {expected!r}; it was damaged or moved"
        )
    return man


def check_artifact_name(name: str) -> str | None:
    """Why an artifact name from a manifest is unsafe as a relative path, or None when it is fine.

    The rule is the object-key rule, stricter: no empty part (`a//b`, leading or trailing `/`), no
    `.` or `..` part, no backslash, no NUL or other control character.
    """
    if not isinstance(name, str) or not name:
        return "it is empty"
    if any(ord(ch) < 32 or ch == "\x7f" for ch in name):
        return "it contains a control character"
    if "\\" in name:
        return "it contains a backslash"
    parts = name.split("/")
    if "" in parts:
        return "it has an empty part (a leading, trailing or doubled '/')"
    if "." in parts or ".." in parts:
        return "it has a '.' or '..' part"
    return None


def contained_path(root: Path, name: str, relative: str, version: str) -> Path:
    """`root / relative`, refused unless `relative` is a safe name whose resolved path stays under `root`.

    Raises:
        IntegrityError: naming the artifact, why it is unsafe and what a valid name looks like.
    """
    problem = check_artifact_name(name) or check_artifact_name(relative)
    target = (root / relative).resolve() if problem is None else None
    if target is not None and not target.is_relative_to(root):
        problem = f"it resolves to {target}, outside {root}"
    if problem is not None or target is None:
        raise IntegrityError(
            f"manifest of version {version} names artifact {name!r}, which is not a safe relative path: {problem}; "
            "the manifest was edited after commit — refusing to fetch it (restore the manifest or retrain). "
            "A valid name looks like 'model/model.json'"
        )
    return target
