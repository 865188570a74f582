"""Model registry on top of any `Store`: versions, aliases, lineage and integrity, per project.

Layout inside the store:

    staging/<version>/<artifact>        files uploaded while a run is in progress
    versions/<version>/manifest.json    written last, create-if-absent: its presence commits the version;
                                        its `name` is the project the version belongs to
    projects/<name>/aliases/...         each project's champion and challenger (`civicml.storage.aliases`,
                                        which also reads the store-wide `aliases/` of older stores)
    projects/<name>/serving/...         each project's serving documents (`scoped_key`)
    contracts/<name>.json               the data contract inferred on a project's first run

One store holds many projects. A `Registry(store, project=NAME)` sees only that project: its
versions, its aliases, its contract; another project's version is refused by name. A registry
without a project is the store-wide view (`models list --store` without a config, `gc`,
`verify`): it lists every version, and reads aliases when the store holds one project only.
Version ids are unique in the store, so approvals (`approvals/<version>.json`) need no project.

A run that dies before writing the manifest leaves only `staging/` objects, which
are invisible to every reader and removed by `gc_staging`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicml.storage.aliases import AliasBook, MoveArgs, check_project_name
from civicml.storage.artifacts import fetch_entries, read_entry, verify_entries
from civicml.storage.base import Store, StoreConflict

# The registry's public names, defined beside the manifest and re-exported here for callers.
from civicml.storage.manifest import (
    ALIASES,
    ANY,
    MANIFEST_SCHEMA,
    AliasConflict,
    IntegrityError,
    RegistryError,
    check_artifact_name,
    manifest_bytes,
    manifest_signing_bytes,
    new_version_id,
    parse_manifest,
    sha256_bytes,
    tree_hash,
    utcnow,
)
from civicml.storage.manifest_diff import dict_diff, diff_manifests

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "ALIASES",
    "ANY",
    "MANIFEST_SCHEMA",
    "AliasConflict",
    "IntegrityError",
    "Registry",
    "RegistryError",
    "check_artifact_name",
    "dict_diff",
    "diff_manifests",
    "manifest_bytes",
    "manifest_signing_bytes",
    "new_version_id",
    "sha256_bytes",
    "tree_hash",
    "utcnow",
]


class Registry:
    """Versions, aliases and artifacts of one project (or, without one, the whole store) in one store.

    Args:
        store: The store.
        project: The project's `name:`; None for the store-wide view.
    """

    def __init__(self, store: Store, project: str | None = None):
        self.store = store
        self.project = None if project is None else check_project_name(project)
        self._aliases = AliasBook(store, self.project_of)

    def for_project(self, project: str | None) -> Registry:
        """The same store seen as `project` (None: the store-wide view)."""
        return Registry(self.store, project)

    def describe(self) -> str:
        """The store, and the project when this view has one (for messages)."""
        where = self.store.describe()
        return f"project {self.project!r} in {where}" if self.project else where

    # -- projects -------------------------------------------------------------
    def project_of(self, version: str) -> str | None:
        """The project a committed version belongs to (its manifest's `name`), or None."""
        try:
            man = parse_manifest(*self._manifest_at(version))
        except (FileNotFoundError, IntegrityError):
            return None
        name = man.get("name")
        return name if isinstance(name, str) else None

    def projects(self) -> list[str]:
        """Every project with a committed version or an alias in the store, sorted."""
        names = {m.get("name") for m in self._scan()[0]} | self._aliases.projects_with_aliases()
        return sorted(n for n in names if isinstance(n, str))

    def _alias_project(self) -> str | None:
        """Whose aliases an alias read means: this view's project, else the store's only one."""
        if self.project is not None:
            return self.project
        owners = sorted(self._aliases.projects_with_aliases())
        if len(owners) > 1:
            raise RegistryError(
                f"{self.store.describe()} holds the champions of several projects ({', '.join(owners)}); say which "
                "one: pass --project NAME, or use that project's config (its name:)"
            )
        return owners[0] if owners else None

    def scoped_key(self, key: str) -> str:
        """Where this project keeps a store-wide document such as `serving/routing.json`."""
        project = self._alias_project()
        return key if project is None else f"projects/{project}/{key}"

    def read_scoped(self, key: str) -> bytes:
        """A project document (`scoped_key`); an older store's store-wide one while the project inherits it.

        Raises:
            FileNotFoundError: neither exists.
        """
        scoped = self.scoped_key(key)
        try:
            return self.store.get_bytes(scoped)
        except FileNotFoundError:
            project = self._alias_project()
            if scoped == key or project is None or self.store.list_keys(self._aliases.prefix(project, "champion")):
                raise
            legacy = self._aliases.last_move(None, "champion")[1]
            if legacy is None or self.project_of(legacy) not in (project, None):
                raise
            return self.store.get_bytes(key)

    def write_scoped(self, key: str, data: bytes) -> None:
        """Write a project document (`scoped_key`)."""
        self.store.put_bytes(self.scoped_key(key), data)

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
            meta: Everything else the manifest records (`name`: the project, this view's when it has one).
            signer: Optional key with `sign(bytes) -> dict`; the manifest then carries a `signature`.
            before: Called with (manifest, its sha256) before the manifest is written, to record the
                intent in the audit log first (no state without its evidence).

        Raises:
            RegistryError: the version exists already (it is never overwritten), or `meta` names another
                project than this view's.
        """
        if self.project is not None and meta.get("name", self.project) != self.project:
            raise RegistryError(f"cannot commit a version of project {meta.get('name')!r} to {self.describe()}")
        key = f"versions/{version}/manifest.json"
        exists = f"version {version} already exists in {self.store.describe()}; a version is never overwritten"
        if self.store.exists(key):
            raise RegistryError(exists)
        named = {"name": self.project} if self.project is not None else {}
        manifest = {"schema": MANIFEST_SCHEMA, "version": version, "created_at": utcnow(), **named, **meta}
        manifest = json.loads(json.dumps({**manifest, "artifacts": artifacts}, default=str))
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
        """Manifests of this project's committed versions (every project's, store-wide) that can be read.

        Oldest first. A damaged manifest does not hide the others: it is left out here and reported
        by `damaged_versions` (which `models list`, `verify` and `gc` show).
        """
        return self.scan_versions()[0]

    def damaged_versions(self) -> list[dict[str, str]]:
        """Committed versions whose manifest cannot be read: `[{version, key, problem}]`.

        A damaged manifest's project cannot be read either, so every project's view reports it.
        """
        return self.scan_versions()[1]

    def scan_versions(self) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """(readable manifests of this view oldest first, damaged ones with the problem) in one pass."""
        out, damaged = self._scan()
        if self.project is not None:
            # A manifest without a `name` (hand-made; civicml always writes one) belongs to no project: every view.
            out = [m for m in out if m.get("name") in (self.project, None)]
        return out, damaged

    def _scan(self) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        out, damaged = [], []
        where = self.store.describe()
        for key in self._manifest_keys():
            try:
                out.append(parse_manifest(key, self.store.get_bytes(key), where))
            except FileNotFoundError:
                continue  # removed between list and read
            except IntegrityError as err:
                damaged.append({"version": key.split("/")[1], "key": key, "problem": str(err)})
        return sorted(out, key=lambda m: (m.get("created_at", ""), m["version"])), damaged

    def _manifest_keys(self) -> list[str]:
        return [k for k in self.store.list_keys("versions/") if k.endswith("/manifest.json") and k.count("/") == 2]

    def _manifest_at(self, version: str) -> tuple[str, bytes, str]:
        key = f"versions/{version}/manifest.json"
        return key, self.store.get_bytes(key), self.store.describe()

    def manifest(self, version: str) -> dict[str, Any]:
        """The manifest of a committed version of this project (or of the version an alias points to).

        Raises:
            RegistryError: no such version, or it belongs to another project than this view's.
        """
        if version in ALIASES:
            target = self.get_alias(version)
            if target is None:
                whose = f" (project {self.project})" if self.project else ""
                raise RegistryError(f"alias {version!r} is not set{whose}; no model has been promoted to it yet")
            version = target
        try:
            man = parse_manifest(*self._manifest_at(version))
        except FileNotFoundError:
            known = [m["version"] for m in self.versions()][-5:]
            raise RegistryError(
                f"no model version {version!r} in {self.describe()}; recent versions: {known or 'none'}"
            ) from None
        if self.project is not None and man.get("name") not in (self.project, None):
            raise RegistryError(
                f"version {version} belongs to project {man.get('name')!r}, not {self.project!r} (this config's "
                f"name:); use that project's config, or --project {man.get('name')}"
            )
        return man

    def read_artifact(self, version: str, name: str) -> bytes:
        """Read an artifact and check its sha256 against the manifest.

        Raises:
            IntegrityError: the stored bytes do not match the manifest.
        """
        return read_entry(self.store, self.manifest(version), name)

    def fetch_prefix(self, version: str, prefix: str, dest: str | Path) -> Path:
        """Download every artifact named `<prefix>/...` into `dest`, verifying each (`fetch_entries`).

        Raises:
            IntegrityError: an artifact fails its hash or its name would leave `dest`.
        """
        return fetch_entries(self.store, self.manifest(version), prefix, dest)

    def verify(self, version: str) -> list[str]:
        """Check every artifact of a version and its model hash; return the problems (`verify_entries`)."""
        return verify_entries(self.store, self.manifest(version))

    # -- aliases ---------------------------------------------------------------
    def get_alias(self, alias: str) -> str | None:
        """The version this project's alias points to, or None."""
        return self._aliases.last_move(self._alias_project(), alias)[1]

    def alias_history(self, alias: str) -> list[dict[str, Any]]:
        """Every recorded move of this project's alias, oldest first."""
        return self._aliases.history(self._alias_project(), alias)

    def set_alias(self, alias: str, version: str | None, **how: Unpack[MoveArgs]) -> dict[str, Any]:
        """Point this project's `alias` at `version` (None clears it) by creating one move object.

        Only `civicml.governance.promotion` calls this (a test checks): every champion change
        goes through one function. The move is the project's of `version` (of this view when it has
        one): a store-wide view can move a version's alias, never another project's.

        Args:
            alias: `champion` or `challenger`.
            version: Target version, or None to clear the alias.
            **how: `by` and `reason` (required), `expected` (compare-and-swap) and `before`: see `MoveArgs`.

        Raises:
            RegistryError: unknown alias or version, or a version of another project.
            AliasConflict: `expected` no longer holds.
        """
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; use one of {ALIASES}")
        if version is not None:
            # Refuse a version that is not committed (or is another project's); it names the project.
            project = self.manifest(version).get("name") if self.project is None else self.project
            project = project if isinstance(project, str) else None
        else:
            project = self._alias_project()
        return self._aliases.move(project, alias, version, **how)

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
            for key in self.store.list_keys(f"staging/{version}/"):
                self.store.delete(key)
        return removed
