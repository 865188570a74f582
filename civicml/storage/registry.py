"""Model registry on top of any `Store`: versions, aliases, lineage and integrity.

Layout inside the store:

    staging/<version>/<artifact>        files uploaded while a run is in progress
    versions/<version>/manifest.json    written last: its presence commits the version
    aliases/<alias>.json                current version + every move (who, from, to, why, when)
    contracts/<name>.json               the data contract inferred on a project's first run

A run that dies before writing the manifest leaves only `staging/` objects, which
are invisible to every reader and removed by `gc_staging`.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from civicml.storage.store import Store

MANIFEST_SCHEMA = "civicml.manifest/v1"
ALIASES = ("champion", "challenger")


class RegistryError(RuntimeError):
    """A registry operation is not possible (unknown version, alias, duplicate commit)."""


class IntegrityError(RegistryError):
    """A stored artifact's sha256 does not match its manifest."""


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def utcnow() -> str:
    """Current UTC time as ISO 8601 (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_version_id() -> str:
    """A sortable, unique version id such as `v20261129-104512-3f9a1c`."""
    import secrets

    return datetime.now(timezone.utc).strftime("v%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class Registry:
    """Versions, aliases and artifacts of one project in one store."""

    def __init__(self, store: Store):
        self.store = store

    # -- writing a version -------------------------------------------------
    def upload(self, version: str, name: str, data: bytes) -> dict[str, Any]:
        """Stage one artifact for `version` and return its manifest entry."""
        key = f"staging/{version}/{name}"
        self.store.put_bytes(key, data)
        return {"key": key, "sha256": sha256_bytes(data), "size": len(data)}

    def upload_dir(self, version: str, prefix: str, directory: str | Path) -> dict[str, dict[str, Any]]:
        """Stage every file under `directory` as `<prefix>/<relative path>`."""
        entries = {}
        root = Path(directory)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            name = f"{prefix}/{path.relative_to(root).as_posix()}"
            entries[name] = self.upload(version, name, path.read_bytes())
        return entries

    def commit(self, version: str, artifacts: dict[str, dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
        """Write the manifest, which makes the version visible. Never overwrites a version."""
        key = f"versions/{version}/manifest.json"
        if self.store.exists(key):
            raise RegistryError(f"version {version} already exists; a version is never overwritten")
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "version": version,
            "created_at": utcnow(),
            **meta,
            "artifacts": artifacts,
        }
        self.store.put_bytes(key, json.dumps(manifest, indent=2, sort_keys=True).encode())
        return manifest

    # -- reading -------------------------------------------------------------
    def versions(self) -> list[dict[str, Any]]:
        """Manifests of all committed versions, oldest first."""
        out = []
        for key in self.store.list("versions/"):
            if key.endswith("/manifest.json"):
                out.append(json.loads(self.store.get_bytes(key)))
        return sorted(out, key=lambda m: (m.get("created_at", ""), m["version"]))

    def manifest(self, version: str) -> dict[str, Any]:
        """The manifest of a committed version (or of the version an alias points to)."""
        if version in ALIASES:
            target = self.get_alias(version)
            if target is None:
                raise RegistryError(f"alias {version!r} is not set; no model has been promoted to it yet")
            version = target
        try:
            return json.loads(self.store.get_bytes(f"versions/{version}/manifest.json"))
        except FileNotFoundError:
            known = [m["version"] for m in self.versions()][-5:]
            raise RegistryError(
                f"no model version {version!r} in {self.store.describe()}; recent versions: {known or 'none'}"
            ) from None

    def read_artifact(self, version: str, name: str) -> bytes:
        """Read an artifact and check its sha256 against the manifest.

        Raises:
            IntegrityError: the stored bytes do not match the manifest.
        """
        man = self.manifest(version)
        entry = man["artifacts"].get(name)
        if entry is None:
            raise RegistryError(f"version {man['version']} has no artifact {name!r}; it has {sorted(man['artifacts'])}")
        try:
            data = self.store.get_bytes(entry["key"])
        except FileNotFoundError:
            raise IntegrityError(f"artifact {name!r} of version {man['version']} is missing from the store") from None
        actual = sha256_bytes(data)
        if actual != entry["sha256"]:
            raise IntegrityError(
                f"artifact {name!r} of version {man['version']} failed its integrity check: manifest sha256 "
                f"{entry['sha256'][:16]}…, stored object {actual[:16]}…; it was modified after commit — "
                "refusing to load it (restore it or retrain)"
            )
        return data

    def fetch_prefix(self, version: str, prefix: str, dest: str | Path) -> Path:
        """Download every artifact named `<prefix>/...` into `dest`, verifying each."""
        man = self.manifest(version)
        dest = Path(dest)
        names = [n for n in man["artifacts"] if n.startswith(prefix + "/")]
        if not names:
            raise RegistryError(f"version {man['version']} has no artifacts under {prefix!r}")
        for name in names:
            target = dest / name[len(prefix) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read_artifact(man["version"], name))
        return dest

    def verify(self, version: str) -> list[str]:
        """Check every artifact of a version; return the problems (empty when all verify)."""
        problems = []
        man = self.manifest(version)
        for name in sorted(man["artifacts"]):
            try:
                self.read_artifact(man["version"], name)
            except IntegrityError as err:
                problems.append(str(err))
        return problems

    # -- aliases ---------------------------------------------------------------
    def get_alias(self, alias: str) -> str | None:
        """The version an alias points to, or None."""
        try:
            return json.loads(self.store.get_bytes(f"aliases/{alias}.json")).get("version")
        except FileNotFoundError:
            return None

    def alias_history(self, alias: str) -> list[dict[str, Any]]:
        """Every recorded move of an alias, oldest first."""
        try:
            return json.loads(self.store.get_bytes(f"aliases/{alias}.json")).get("history", [])
        except FileNotFoundError:
            return []

    def set_alias(self, alias: str, version: str | None, by: str, reason: str) -> dict[str, Any]:
        """Point `alias` at `version` (None clears it) and record the move."""
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; use one of {ALIASES}")
        if version is not None:
            self.manifest(version)  # refuse to point at a version that is not committed
        previous = self.get_alias(alias)
        move = {"from": previous, "to": version, "by": by, "reason": reason, "at": utcnow()}
        body = {"alias": alias, "version": version, "history": [*self.alias_history(alias), move]}
        self.store.put_bytes(f"aliases/{alias}.json", json.dumps(body, indent=2).encode())
        return move

    # -- contracts and housekeeping ---------------------------------------------
    def load_contract(self, name: str) -> list[dict[str, Any]] | None:
        """The stored data contract of project `name`, if any."""
        try:
            return json.loads(self.store.get_bytes(f"contracts/{name}.json"))
        except FileNotFoundError:
            return None

    def save_contract(self, name: str, contract: list[dict[str, Any]]) -> None:
        """Store the data contract of project `name`."""
        self.store.put_bytes(f"contracts/{name}.json", json.dumps(contract, indent=2).encode())

    def abandoned_staging(self, min_age_seconds: float = 0.0) -> list[str]:
        """Staging version ids that were never committed (and are older than `min_age_seconds`)."""
        committed = {m["version"] for m in self.versions()}
        staged = {k.split("/")[1] for k in self.store.list("staging/")}
        out = []
        for version in sorted(staged - committed):
            try:
                stamp = datetime.strptime(version[1:16], "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc).timestamp()
            except ValueError:
                stamp = 0.0
            if time.time() - stamp >= min_age_seconds:
                out.append(version)
        return out

    def gc_staging(self, min_age_seconds: float = 3600.0) -> list[str]:
        """Delete staging data of runs that never committed; return the removed version ids."""
        removed = self.abandoned_staging(min_age_seconds)
        for version in removed:
            for key in self.store.list(f"staging/{version}/"):
                self.store.delete(key)
        return removed
