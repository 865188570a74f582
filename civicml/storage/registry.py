"""Model registry on top of any `Store`: versions, aliases, lineage and integrity.

Layout inside the store:

    staging/<version>/<artifact>        files uploaded while a run is in progress
    versions/<version>/manifest.json    written last, create-if-absent: its presence commits the version
    aliases/<alias>/<seq>.json          one object per move (who, from, to, why, when), create-if-absent:
                                        the newest is the alias's current version
    aliases/<alias>.json                (older stores) the alias with its history in one object
    contracts/<name>.json               the data contract inferred on a project's first run

A run that dies before writing the manifest leaves only `staging/` objects, which
are invisible to every reader and removed by `gc_staging`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from civicml.storage.base import Store, StoreConflict

MANIFEST_SCHEMA = "civicml.manifest/v1"
ALIASES = ("champion", "challenger")


class RegistryError(RuntimeError):
    """A registry operation is not possible (unknown version, alias, duplicate commit)."""


class AliasConflict(RegistryError):
    """An alias moved since the caller read it (compare-and-swap lost); the message says who moved it."""


ANY: Any = object()  # `set_alias(expected=ANY)`: move whatever the alias points to now


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The exact bytes a manifest is stored as (its sha256 is what the audit chain records)."""
    return json.dumps(manifest, indent=2, sort_keys=True).encode()


def manifest_signing_bytes(manifest: dict[str, Any]) -> bytes:
    """What a manifest's signature covers: every field but the signature, canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


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


def tree_hash(files: dict[str, str]) -> str:
    """sha256 over `{relative path: sha256}` in path order: a saved model directory's identity.

    The same definition as `civicml.steps.model_hash` (which hashes files on disk), so a
    manifest's `model_sha256` can be re-derived from its `model/` entries without downloading.
    """
    h = hashlib.sha256()
    for name in sorted(files, key=lambda n: Path(n).parts):
        h.update(name.encode())
        h.update(files[name].encode())
    return h.hexdigest()


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

    def commit(
        self,
        version: str,
        artifacts: dict[str, dict[str, Any]],
        meta: dict[str, Any],
        signer: Any = None,
        before: Callable[[dict[str, Any], str], None] | None = None,
    ) -> dict[str, Any]:
        """Create the manifest, which makes the version visible; of two racing commits exactly one wins.

        Args:
            version: Version id.
            artifacts: Staged artifact entries (from `upload`).
            meta: Everything else the manifest records.
            signer: Optional key with `sign(bytes) -> dict`; the manifest then carries a `signature`.
            before: Called with (manifest, its sha256) before the manifest is written, to record the
                intent in the audit log first (no state without its evidence).

        Raises:
            RegistryError: the version exists already (it is never overwritten).
        """
        key = f"versions/{version}/manifest.json"
        exists = f"version {version} already exists in {self.store.describe()}; a version is never overwritten"
        if self.store.exists(key):
            raise RegistryError(exists)
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "version": version,
            "created_at": utcnow(),
            **meta,
            "artifacts": artifacts,
        }
        manifest = json.loads(json.dumps(manifest, default=str))
        if signer is not None:
            manifest["signature"] = signer.sign(manifest_signing_bytes(manifest))
        data = manifest_bytes(manifest)
        if before is not None:
            before(manifest, sha256_bytes(data))
        try:
            self.store.create(key, data)
        except StoreConflict:
            raise RegistryError(exists + " (another run committed it first)") from None
        return manifest

    # -- reading -------------------------------------------------------------
    def versions(self) -> list[dict[str, Any]]:
        """Manifests of all committed versions that can be read, oldest first.

        A damaged manifest does not hide the others: it is left out here and reported by
        `damaged_versions` (which `models list`, `verify` and `gc` show).
        """
        return self.scan_versions()[0]

    def damaged_versions(self) -> list[dict[str, str]]:
        """Committed versions whose manifest cannot be read: `[{version, key, problem}]`."""
        return self.scan_versions()[1]

    def scan_versions(self) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """(readable manifests oldest first, damaged ones with the problem) in one pass over the store."""
        out, damaged = [], []
        for key in self._manifest_keys():
            try:
                out.append(self._parse_manifest(key, self.store.get_bytes(key)))
            except FileNotFoundError:
                continue  # removed between list and read
            except IntegrityError as err:
                damaged.append({"version": key.split("/")[1], "key": key, "problem": str(err)})
        return sorted(out, key=lambda m: (m.get("created_at", ""), m["version"])), damaged

    def _manifest_keys(self) -> list[str]:
        return [k for k in self.store.list("versions/") if k.endswith("/manifest.json") and k.count("/") == 2]

    def manifest(self, version: str) -> dict[str, Any]:
        """The manifest of a committed version (or of the version an alias points to)."""
        if version in ALIASES:
            target = self.get_alias(version)
            if target is None:
                raise RegistryError(f"alias {version!r} is not set; no model has been promoted to it yet")
            version = target
        key = f"versions/{version}/manifest.json"
        try:
            return self._parse_manifest(key, self.store.get_bytes(key))
        except FileNotFoundError:
            known = [m["version"] for m in self.versions()][-5:]
            raise RegistryError(
                f"no model version {version!r} in {self.store.describe()}; recent versions: {known or 'none'}"
            ) from None

    def _parse_manifest(self, key: str, data: bytes) -> dict[str, Any]:
        try:
            man = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise IntegrityError(
                f"manifest {key} in {self.store.describe()} is not valid JSON ({err}); it was damaged"
            ) from None
        if (
            not isinstance(man, dict)
            or man.get("schema") != MANIFEST_SCHEMA
            or not isinstance(man.get("artifacts"), dict)
        ):
            raise IntegrityError(f"{key} in {self.store.describe()} is not a {MANIFEST_SCHEMA} manifest")
        expected = key.split("/")[1] if key.count("/") == 2 else None
        if not isinstance(man.get("version"), str) or (expected is not None and man["version"] != expected):
            raise IntegrityError(
                f"manifest {key} in {self.store.describe()} names version {man.get('version')!r}, not {expected!r}; "
                "it was damaged or moved"
            )
        return man

    def read_artifact(self, version: str, name: str) -> bytes:
        """Read an artifact and check its sha256 against the manifest.

        Raises:
            IntegrityError: the stored bytes do not match the manifest.
        """
        return self._read_entry(self.manifest(version), name)

    def _read_entry(self, man: dict[str, Any], name: str) -> bytes:
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
        """Download every artifact named `<prefix>/...` into `dest`, verifying each.

        Names come from a manifest, which anyone with write access to the store can edit: each is
        checked like an object key and its resolved path must stay under `dest`, so a name such as
        `model/../../x` or `model//etc/x` is refused before anything is written.

        Raises:
            IntegrityError: an artifact name would leave `dest` (nothing is written then).
        """
        man = self.manifest(version)
        dest = Path(dest)
        names = [n for n in man["artifacts"] if n.startswith(prefix + "/")]
        if not names:
            raise RegistryError(f"version {man['version']} has no artifacts under {prefix!r}")
        root = dest.resolve()
        targets = {name: _contained_path(root, name, name[len(prefix) + 1 :], man["version"]) for name in names}
        for name, target in targets.items():
            data = self._read_entry(man, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return dest

    def verify(self, version: str) -> list[str]:
        """Check every artifact of a version; return the problems (empty when all verify).

        Besides each artifact's sha256 this checks that the manifest's `model_sha256` is the
        hash of the `model/` files it lists, so an edited manifest entry is caught too.
        """
        problems = []
        man = self.manifest(version)
        for name in sorted(man["artifacts"]):
            try:
                self._read_entry(man, name)
            except IntegrityError as err:
                problems.append(str(err))
        model_files = {n[len("model/") :]: e["sha256"] for n, e in man["artifacts"].items() if n.startswith("model/")}
        recorded = man.get("model_sha256")
        if model_files and recorded and tree_hash(model_files) != recorded:
            problems.append(
                f"manifest of version {man['version']}: model_sha256 {recorded[:16]}… is not the hash of the model "
                f"files it lists ({tree_hash(model_files)[:16]}…); the manifest was edited after commit"
            )
        return problems

    # -- aliases ---------------------------------------------------------------
    def _legacy_alias(self, alias: str) -> dict[str, Any]:
        try:
            return json.loads(self.store.get_bytes(f"aliases/{alias}.json"))
        except FileNotFoundError:
            return {}

    def _moves_prefix(self, alias: str) -> str:
        return f"aliases/{alias}/"

    def _last_move(self, alias: str) -> tuple[int, str | None]:
        """(seq of the newest move, the version the alias points to)."""
        keys = self.store.list(self._moves_prefix(alias))
        if keys:
            move = json.loads(self.store.get_bytes(keys[-1]))
            return move["seq"], move["to"]
        legacy = self._legacy_alias(alias)
        return len(legacy.get("history", [])), legacy.get("version")

    def get_alias(self, alias: str) -> str | None:
        """The version an alias points to, or None."""
        return self._last_move(alias)[1]

    def alias_history(self, alias: str) -> list[dict[str, Any]]:
        """Every recorded move of an alias, oldest first."""
        moves = [json.loads(self.store.get_bytes(k)) for k in self.store.list(self._moves_prefix(alias))]
        return [*self._legacy_alias(alias).get("history", []), *moves]

    def set_alias(
        self,
        alias: str,
        version: str | None,
        by: str,
        reason: str,
        expected: Any = ANY,
        before: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    ) -> dict[str, Any]:
        """Point `alias` at `version` (None clears it) by creating one move object; racing moves all land.

        Only `civicml.governance.promotion` calls this (a test checks): every champion change
        goes through one function.

        Args:
            alias: `champion` or `challenger`.
            version: Target version, or None to clear the alias.
            by: Who moves it.
            reason: Why.
            expected: Compare-and-swap: the version the caller saw; when the alias points elsewhere
                the move is refused with `AliasConflict`. `ANY` moves from whatever is current.
            before: Called with the move before it is written (to audit the intent); may return
                extra fields to store with the move (e.g. the audit record's seq).

        Raises:
            RegistryError: unknown alias or version.
            AliasConflict: `expected` no longer holds.
        """
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; use one of {ALIASES}")
        if version is not None:
            self.manifest(version)  # refuse to point at a version that is not committed
        for _ in range(1000):
            seq, current = self._last_move(alias)
            if expected is not ANY and current != expected:
                raise AliasConflict(
                    f"alias {alias!r} points to {current} now, not {expected} as when this change was decided; "
                    "another promotion won — re-evaluate against the new champion (e.g. run the pipeline again)"
                )
            move = {"alias": alias, "seq": seq + 1, "from": current, "to": version, "by": by, "reason": reason}
            move["at"] = utcnow()
            if before is not None:
                move.update(before(dict(move)) or {})
            try:
                self.store.create(f"{self._moves_prefix(alias)}{seq + 1:012d}.json", json.dumps(move).encode())
                return move
            except StoreConflict:
                continue  # another move took this seq: re-read and go again
        raise RegistryError(f"could not move alias {alias!r}: other writers kept winning; retry")

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
        """Staging version ids that were never committed and untouched for `min_age_seconds`.

        Age is measured from the newest object of each staging prefix, so a run that is
        still uploading (and may yet commit) is never counted as abandoned.
        """
        # Committed = a manifest exists, readable or not: a damaged version's artifacts are never garbage.
        committed = {k.split("/")[1] for k in self._manifest_keys()}
        newest: dict[str, float] = {}
        for obj in self.store.list_info("staging/"):
            version = obj.key.split("/")[1]
            newest[version] = max(newest.get(version, 0.0), obj.modified)
        now = time.time()
        # An age limit of 0 means "regardless of age": object-store clocks and rounding can put a
        # just-written object's timestamp a moment after ours.
        return sorted(
            v
            for v, stamp in newest.items()
            if v not in committed and (min_age_seconds <= 0 or now - stamp >= min_age_seconds)
        )

    def gc_staging(self, min_age_seconds: float = 3600.0) -> list[str]:
        """Delete staging data of runs that never committed; return the removed version ids."""
        removed = self.abandoned_staging(min_age_seconds)
        for version in removed:
            for key in self.store.list(f"staging/{version}/"):
                self.store.delete(key)
        return removed


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


def _contained_path(root: Path, name: str, relative: str, version: str) -> Path:
    """`root / relative`, refused unless `relative` is a safe name whose resolved path stays under `root`."""
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


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as `{dotted.key: leaf}`; lists stay leaves (compared whole)."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): obj}


def dict_diff(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Leaves that differ between two nested dicts: `[{key, a, b}]` (missing sides are None)."""
    fa, fb = _flatten(a), _flatten(b)
    return [
        {"key": key, "a": fa.get(key), "b": fb.get(key)}
        for key in sorted(set(fa) | set(fb))
        if fa.get(key) != fb.get(key)
    ]


def diff_manifests(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What differs between two versions: identity, metrics, lineage, config and artifacts.

    Returns:
        `{"a", "b", "summary": [...], "metrics": [...], "lineage": [...], "config": [...],
        "artifacts": [...]}`; each list holds `{key, a, b}` rows (metrics add `delta`).
    """
    summary_keys = ("status", "family", "task", "model_sha256", "created_at")
    summary = [{"key": k, "a": a.get(k), "b": b.get(k)} for k in summary_keys if a.get(k) != b.get(k)]
    if a.get("gate", {}).get("decision") != b.get("gate", {}).get("decision"):
        summary.append(
            {"key": "gate.decision", "a": a.get("gate", {}).get("decision"), "b": b.get("gate", {}).get("decision")}
        )
    metrics = []
    for row in dict_diff(a.get("metrics", {}), b.get("metrics", {})):
        va, vb = row["a"], row["b"]
        numeric = isinstance(va, (int, float)) and isinstance(vb, (int, float))
        metrics.append({**row, "delta": (vb - va) if numeric else None})
    la = {k: v for k, v in a.get("lineage", {}).items() if k != "config"}
    lb = {k: v for k, v in b.get("lineage", {}).items() if k != "config"}
    artifacts = []
    names = sorted(set(a.get("artifacts", {})) | set(b.get("artifacts", {})))
    for name in names:
        sa = a.get("artifacts", {}).get(name, {}).get("sha256")
        sb = b.get("artifacts", {}).get(name, {}).get("sha256")
        if sa != sb:
            artifacts.append({"key": name, "a": sa, "b": sb})
    return {
        "a": a["version"],
        "b": b["version"],
        "summary": summary,
        "metrics": metrics,
        "lineage": dict_diff(la, lb),
        "config": dict_diff(a.get("lineage", {}).get("config", {}), b.get("lineage", {}).get("config", {})),
        "artifacts": artifacts,
    }
