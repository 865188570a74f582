"""Object-store interface with a local-directory backend; the S3/MinIO backend lives in `s3.py`.

Keys are `/`-separated relative names (`versions/v1/manifest.json`). Every backend
writes an object atomically: a reader sees the old object or the new one, never half.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it (Linux `/proc/self/status`; else set and restore)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class StoreError(RuntimeError):
    """The object store cannot be reached or refused an operation (message has no secrets)."""


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: key, size in bytes and last-modified time (UNIX seconds)."""

    key: str
    size: int
    modified: float


class Store(ABC):
    """A flat key/value object store."""

    uri: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, replacing any object there."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Read the object at `key`; raise FileNotFoundError when absent."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object exists at `key`."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """All keys under `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object at `key` (no error when absent)."""

    def list_info(self, prefix: str = "") -> list[ObjectInfo]:
        """Like `list`, with size and modification time (backends override this with one call)."""
        return [ObjectInfo(key, len(self.get_bytes(key)), 0.0) for key in self.list(prefix)]

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


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid object key {key!r}: use a relative path without '..'")
    return key


class LocalStore(Store):
    """A directory on disk (the embedded default, `.civicml/`)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write to a temp file in the same directory, then rename: atomic on POSIX.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except OSError as err:
            raise StoreError(
                f"cannot write {key!r} to the store directory {self.root}: {err.strerror}; "
                "check storage.uri and the directory's permissions"
            ) from None
        try:
            # mkstemp creates 0600 whatever the umask; a store directory shared by a team's group
            # must get the mode a plain open() would (0666 minus the umask).
            os.fchmod(fd, 0o666 & ~current_umask())
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {key!r} in store {self.uri}")
        return path.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        base = self.root / prefix if prefix and prefix.endswith("/") else self.root
        if not base.exists():
            return []
        keys = []
        for p in base.rglob("*"):
            if p.is_file() and not p.name.startswith(".tmp-"):
                key = p.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def list_info(self, prefix: str = "") -> list[ObjectInfo]:
        out = []
        for key in self.list(prefix):
            st = (self.root / key).stat()
            out.append(ObjectInfo(key, st.st_size, st.st_mtime))
        return out

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop directories left empty so `list` and `ls` show only live data.
        parent = path.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            try:
                parent.rmdir()
            except OSError:  # a concurrent writer just put something there: keep it
                break
            parent = parent.parent

    def local_path(self, key: str) -> Path | None:
        return self._path(key)


def resolve_store_uri(configured: str | None = None) -> str:
    """The store URI: `CIVICML_STORE_URI` from the environment wins over the config."""
    return os.environ.get("CIVICML_STORE_URI") or configured or ".civicml"


def open_store(uri: str | None = None, explicit: bool = False) -> Store:
    """Open the store at `uri` (`./dir`, `file:///dir` or `s3://bucket/prefix`).

    Args:
        uri: From `storage.uri`; `CIVICML_STORE_URI` overrides it when set.
        explicit: `uri` was given on purpose (e.g. a `--store` flag) and wins over the environment.

    Raises:
        StoreError: the URI is not a directory path or s3:// URI, or S3 settings are missing.
    """
    uri = uri if explicit and uri else resolve_store_uri(uri)
    if uri.startswith("s3://"):
        from civicml.storage.s3 import S3Store

        return S3Store.from_uri(uri)
    uri = uri.removeprefix("file://")
    if "://" in uri:
        raise StoreError(f"unsupported store URI {uri!r}: use a directory path or s3://bucket/prefix")
    return LocalStore(uri)


def read_uri(uri: str) -> bytes:
    """Read one object given as `s3://bucket/key` using the environment's S3 settings."""
    from civicml.storage.s3 import S3Store

    bucket, _, key = uri[len("s3://") :].partition("/")
    return S3Store.from_uri(f"s3://{bucket}").get_bytes(key)
