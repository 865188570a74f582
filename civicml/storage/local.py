"""Local-directory backend of the object store (the embedded default, `.civicml/`).

Atomicity: every write goes to a temporary file in the target directory (named
`.tmp-*`, which `list` never shows and which an interrupted write may leave behind)
and is then linked or renamed into place, both atomic on POSIX.

* `create` hard-links the finished temporary file to the key: `link(2)` fails with
  EEXIST when the key exists, so of two creators exactly one wins and nobody ever sees
  a half-written object (O_EXCL on the final name would expose a partial file).
* `replace` compares the current content's etag and renames under an exclusive
  `flock` on a per-key lock file, so the compare and the swap are one step for every
  conditional writer on this machine (and on NFS v4 with working locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from civicml.storage.base import ObjectInfo, Store, StoreConflict, StoreError, check_key

TMP_PREFIX = ".tmp-"


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


def content_etag(data: bytes) -> str:
    """The etag of a local object: the sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


class LocalStore(Store):
    """A directory on disk."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _denied(self, key: str, err: OSError) -> StoreError:
        return StoreError(
            f"cannot write {key!r} to the store directory {self.root}: {err.strerror}; "
            "check storage.uri and the directory's permissions"
        )

    def _stage(self, key: str, data: bytes) -> tuple[Path, Path]:
        """Write `data` to a synced temporary file beside `key`; return (temp, final) paths."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
        except OSError as err:
            raise self._denied(key, err) from None
        try:
            # mkstemp creates 0600 whatever the umask; a store directory shared by a team's group
            # must get the mode a plain open() would (0666 minus the umask).
            os.fchmod(fd, 0o666 & ~current_umask())
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp), path

    def put_bytes(self, key: str, data: bytes) -> None:
        tmp, path = self._stage(key, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def create(self, key: str, data: bytes) -> str:
        tmp, path = self._stage(key, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise StoreConflict(key, f"{key!r} already exists in {self.uri}; it is never overwritten") from None
        except OSError as err:
            raise self._denied(key, err) from None
        finally:
            tmp.unlink(missing_ok=True)
        return content_etag(data)

    @contextlib.contextmanager
    def _key_lock(self, path: Path) -> Iterator[None]:
        lock = path.parent / f"{TMP_PREFIX}{path.name}.lock"
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def replace(self, key: str, data: bytes, if_match: str) -> str:
        tmp, path = self._stage(key, data)
        try:
            with self._key_lock(path):
                try:
                    current = content_etag(path.read_bytes())
                except FileNotFoundError:
                    raise StoreConflict(key, f"{key!r} was deleted from {self.uri} since it was read") from None
                if current != if_match:
                    raise StoreConflict(key, f"{key!r} in {self.uri} changed since it was read (another writer)")
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return content_etag(data)

    def read(self, key: str) -> tuple[bytes, str]:
        data = self.get_bytes(key)
        return data, content_etag(data)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(f"no object {key!r} in store {self.uri}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        base = self.root / prefix if prefix and prefix.endswith("/") else self.root
        if not base.exists():
            return []
        keys = []
        for p in base.rglob("*"):
            if not p.name.startswith(TMP_PREFIX) and p.is_file():
                key = p.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def list_info(self, prefix: str = "") -> list[ObjectInfo]:
        out = []
        for key in self.list_keys(prefix):
            try:
                st = (self.root / key).stat()
            except FileNotFoundError:  # deleted by another writer since listing
                continue
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
