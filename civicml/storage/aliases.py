"""The aliases (`champion`, `challenger`) of each project in a store: one object per move.

Layout:

    projects/<name>/aliases/<alias>/<seq>.json   a move of project <name>'s alias (who, from, to, why, when)
    aliases/<alias>/<seq>.json                   (stores made before projects were separated) the store's alias
    aliases/<alias>.json                         (older still) that alias with its history in one object

Each move is *created* (create-if-absent) under the next sequence number, so of two racing moves
both land, in order, and none is lost; the newest is the alias's current version.

Reading both layouts, with no migration step: a project whose own folder holds no move yet inherits
the store-wide alias only when it points to one of the project's own versions (by the manifest's
`name`). So an old store keeps its champion, and a second project never sees (or replaces) the
first one's. The project's first move goes into its own folder, continuing the old sequence; the
old objects stay as history. Versions without a `name` (hand-made by tools and tests; civicml has
always written one) belong to no project: every project's view sees them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypedDict

from civicml.storage.base import Store, StoreConflict
from civicml.storage.manifest import ALIASES, ANY, AliasConflict, RegistryError, utcnow

if TYPE_CHECKING:
    from typing_extensions import Unpack

PROJECTS_PREFIX = "projects/"
LEGACY_PREFIX = "aliases/"


class _Who(TypedDict):
    by: str
    reason: str


class MoveArgs(_Who, total=False):
    """The keyword arguments of an alias move (`Registry.set_alias`, `AliasBook.move`).

    Keys:
        by: Who moves it.
        reason: Why.
        expected: Compare-and-swap: the version the caller saw; when the alias points elsewhere
            the move is refused with `AliasConflict`. `ANY` (the default) moves from whatever is current.
        before: Called with the move before it is written (to audit the intent); may return
            extra fields to store with the move (e.g. the audit record's seq).
    """

    expected: Any
    before: Callable[[dict[str, Any]], dict[str, Any] | None] | None


def check_project_name(name: str) -> str:
    """A project `name:` that is safe as one part of an object key.

    Raises:
        RegistryError: naming the problem and a valid example.
    """
    bad = (
        not isinstance(name, str)
        or not name.strip()
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or any(ord(ch) < 32 or ch == "\x7f" for ch in name)
    )
    if bad:
        raise RegistryError(
            f"project name {name!r} cannot name a project in a store: use letters, digits, '-', '_' or '.' "
            "without '/' (set name: e.g. benefit-triage in the config)"
        )
    return name


class AliasBook:
    """Reads and moves the aliases of any project in `store`.

    Args:
        store: The store.
        project_of: The project (`name`) of a committed version, or None (unknown or unnamed version).
    """

    def __init__(self, store: Store, project_of: Callable[[str], str | None]):
        self.store = store
        self.project_of = project_of

    def prefix(self, project: str | None, alias: str) -> str:
        """Where the moves of `project`'s `alias` are created."""
        if project is None:
            return f"{LEGACY_PREFIX}{alias}/"
        return f"{PROJECTS_PREFIX}{project}/aliases/{alias}/"

    def _load(self, key: str) -> dict[str, Any]:
        return json.loads(self.store.get_bytes(key))

    def _legacy_object(self, alias: str) -> dict[str, Any]:
        try:
            return self._load(f"{LEGACY_PREFIX}{alias}.json")
        except FileNotFoundError:
            return {}

    def _legacy_last(self, alias: str, listed: list[str] | None = None) -> tuple[int, str | None]:
        keys = self.store.list_keys(self.prefix(None, alias)) if listed is None else listed
        if keys:
            move = self._load(keys[-1])
            return move["seq"], move["to"]
        legacy = self._legacy_object(alias)
        return len(legacy.get("history", [])), legacy.get("version")

    def last_move(self, project: str | None, alias: str) -> tuple[int, str | None]:
        """(seq of the newest move, the version `project`'s alias points to)."""
        keys = self.store.list_keys(self.prefix(project, alias))
        if project is None:
            return self._legacy_last(alias, keys)
        if keys:
            move = self._load(keys[-1])
            return move["seq"], move["to"]
        seq, target = self._legacy_last(alias)
        # The store-wide alias is this project's only when it points to one of the project's versions
        # (or to a version that names no project).
        return seq, target if target is not None and self.project_of(target) in (project, None) else None

    def history(self, project: str | None, alias: str) -> list[dict[str, Any]]:
        """Every recorded move of `project`'s alias, oldest first (older layouts first)."""
        legacy = [
            *self._legacy_object(alias).get("history", []),
            *(self._load(k) for k in self.store.list_keys(self.prefix(None, alias))),
        ]
        if project is None:
            return legacy
        # Of the store-wide history, the moves that touched one of this project's versions.
        mine = [m for m in legacy if {self.project_of(v) for v in (m.get("from"), m.get("to")) if v} & {project, None}]
        return [*mine, *(self._load(k) for k in self.store.list_keys(self.prefix(project, alias)))]

    def projects_with_aliases(self) -> set[str]:
        """Projects that have an alias: their own folder, or the store-wide alias pointing to their version."""
        names = {k.split("/")[1] for k in self.store.list_keys(PROJECTS_PREFIX) if "/aliases/" in k}
        for alias in ALIASES:
            target = self._legacy_last(alias)[1]
            owner = self.project_of(target) if target else None
            if owner is not None:
                names.add(owner)
        return names

    def move(self, project: str | None, alias: str, version: str | None, **how: Unpack[MoveArgs]) -> dict[str, Any]:
        """Create the next move of `project`'s alias (see `Registry.set_alias`; `how` as `MoveArgs`).

        Raises:
            AliasConflict: the alias points elsewhere than `expected`.
            RegistryError: other writers kept winning.
        """
        expected, before = how.get("expected", ANY), how.get("before")
        for _ in range(1000):
            seq, current = self.last_move(project, alias)
            if expected is not ANY and current != expected:
                raise AliasConflict(
                    f"alias {alias!r} points to {current} now, not {expected} as when this change was decided; "
                    "another promotion won — re-evaluate against the new champion (e.g. run the pipeline again)"
                )
            move: dict[str, Any] = {"alias": alias, "seq": seq + 1, "from": current, "to": version}
            if project is not None:
                move["project"] = project
            move.update(by=how["by"], reason=how["reason"], at=utcnow())
            if before is not None:
                move.update(before(dict(move)) or {})
            try:
                self.store.create(f"{self.prefix(project, alias)}{seq + 1:012d}.json", json.dumps(move).encode())
                return move
            except StoreConflict:
                continue  # another move took this seq: re-read and go again
        raise RegistryError(f"could not move alias {alias!r}: other writers kept winning; retry")
