"""A committed version's artifacts: read each against its sha256, fetch a folder safely, verify all.

Functions of a store and an already-read manifest; the registry resolves the manifest (and checks
its project) first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from civicml.storage.base import Store
from civicml.storage.manifest import IntegrityError, RegistryError, contained_path, sha256_bytes, tree_hash


def read_entry(store: Store, man: dict[str, Any], name: str) -> bytes:
    """The bytes of artifact `name` of manifest `man`, checked against its sha256.

    Raises:
        RegistryError: the manifest has no such artifact.
        IntegrityError: the object is missing or its bytes do not match.
    """
    entry = man["artifacts"].get(name)
    if entry is None:
        raise RegistryError(f"version {man['version']} has no artifact {name!r}; it has {sorted(man['artifacts'])}")
    where = f"artifact {name!r} of version {man['version']}"
    return get_verified(
        store,
        entry["key"],
        entry["sha256"],
        missing=lambda: IntegrityError(f"{where} is missing from the store"),
        modified=lambda actual: IntegrityError(
            f"{where} failed its integrity check: manifest sha256 "
            f"{entry['sha256'][:16]}…, stored object {actual[:16]}…; it was modified after commit — "
            "refusing to load it (restore it or retrain)"
        ),
    )


def get_verified(
    store: Store, key: str, sha256: str, missing: Callable[[], Exception], modified: Callable[[str], Exception]
) -> bytes:
    """The bytes at `key`, checked against the sha256 recorded for them.

    Raises:
        The exception `missing()` when there is no object at `key`, `modified(actual_sha256)` when
        its bytes do not match.
    """
    try:
        data = store.get_bytes(key)
    except FileNotFoundError:
        raise missing() from None
    actual = sha256_bytes(data)
    if actual != sha256:
        raise modified(actual)
    return data


def fetch_entries(store: Store, man: dict[str, Any], prefix: str, dest: str | Path) -> Path:
    """Download every artifact of `man` named `<prefix>/...` into `dest`, verifying each.

    Names come from a manifest, which anyone with write access to the store can edit: each is
    checked like an object key and its resolved path must stay under `dest`, so a name such as
    `model/../../x` or `model//etc/x` is refused before anything is written.

    Raises:
        IntegrityError: an artifact name would leave `dest` (nothing is written then).
    """
    dest = Path(dest)
    names = [n for n in man["artifacts"] if n.startswith(prefix + "/")]
    if not names:
        raise RegistryError(f"version {man['version']} has no artifacts under {prefix!r}")
    root = dest.resolve()
    targets = {name: contained_path(root, name, name[len(prefix) + 1 :], man["version"]) for name in names}
    for name, target in targets.items():
        data = read_entry(store, man, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return dest


def verify_entries(store: Store, man: dict[str, Any]) -> list[str]:
    """Check every artifact of `man`; return the problems (empty when all verify).

    Besides each artifact's sha256 this checks that the manifest's `model_sha256` is the
    hash of the `model/` files it lists, so an edited manifest entry is caught too.
    """
    problems = []
    for name in sorted(man["artifacts"]):
        try:
            read_entry(store, man, name)
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
