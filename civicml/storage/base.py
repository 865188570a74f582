"""The object-store interface every backend implements, with conditional writes.

Keys are `/`-separated relative names (`versions/v1/manifest.json`). Every backend
writes an object atomically: a reader sees the old object or the new one, never half.

Conditional writes are what make racing writers safe (DESIGN.md invariant 2):

* `create(key, data)` writes only if nothing is at `key` (S3 `If-None-Match: *`,
  a hard link on a directory), so of two creators exactly one wins;
* `replace(key, data, if_match=etag)` writes only if the object is still the one
  read with that etag (S3 `If-Match`, compare-and-rename under a lock on a directory).

The loser of either race gets `StoreConflict`, never a silent overwrite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


class StoreError(RuntimeError):
    """The object store cannot be reached or refused an operation (message has no secrets)."""


class StoreConflict(StoreError):
    """A conditional write lost: the key already exists (`create`) or changed since it was read (`replace`).

    Attributes:
        key: The object key the write was for.
    """

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: key, size in bytes and last-modified time (UNIX seconds)."""

    key: str
    size: int
    modified: float


class Store(ABC):
    """A flat key/value object store with atomic puts and conditional writes."""

    uri: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, replacing any object there (unconditional: artifacts only)."""

    @abstractmethod
    def create(self, key: str, data: bytes) -> str:
        """Write `data` at `key` only if no object is there; return the new object's etag.

        Raises:
            StoreConflict: an object already exists at `key`.
        """

    @abstractmethod
    def replace(self, key: str, data: bytes, if_match: str) -> str:
        """Overwrite `key` only if it still has etag `if_match` (from `read`); return the new etag.

        Raises:
            StoreConflict: the object changed or was deleted since it was read.
        """

    @abstractmethod
    def read(self, key: str) -> tuple[bytes, str]:
        """The object at `key` and its etag (for a later `replace`); FileNotFoundError when absent."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read the object at `key`; raise FileNotFoundError when absent."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object exists at `key`."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """All keys under `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object at `key` (no error when absent)."""

    def list_info(self, prefix: str = "") -> list[ObjectInfo]:
        """Like `list_keys`, with size and modification time (backends override this with one call)."""
        return [ObjectInfo(key, len(self.get_bytes(key)), 0.0) for key in self.list_keys(prefix)]

    def put_file(self, key: str, path: str | Path) -> None:
        """Upload a local file."""
        self.put_bytes(key, Path(path).read_bytes())

    def get_file(self, key: str, path: str | Path) -> Path:
        """Download `key` to a local file and return its path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(self.get_bytes(key))
        return p

    def local_path(self, key: str) -> Path | None:
        """A filesystem path for `key` when the backend is local (for showing users), else None."""
        return None

    def describe(self) -> str:
        """Where the store is, for messages; never includes credentials."""
        return self.uri


def check_key(key: str) -> str:
    """Return `key` if it is a valid relative object key.

    Raises:
        ValueError: the key is empty, absolute, has an empty part or a `..` part.
    """
    parts = key.split("/") if key else []
    if not parts or key.startswith("/") or ".." in parts or "" in parts or "\x00" in key:
        raise ValueError(f"invalid object key {key!r}: use a relative path such as 'versions/v1/manifest.json'")
    return key


_check_key = check_key  # the name older callers import
