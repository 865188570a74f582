"""S3 backend of the object store, on the `minio` client (MinIO, SeaweedFS or any S3-compatible store).

Where the store is comes from the URI (`s3://bucket/prefix`) and the environment
(`civicml.storage.s3_settings`); credentials come from the environment only, never from the config.

Conditional writes (`create`, `replace`) send `If-None-Match: *` / `If-Match: "<etag>"` on a
plain PutObject. minio-py 7.2's public `put_object` turns every header it does not know into
`x-amz-meta-*` user metadata (`minio/helpers.py` `normalize_headers`), which the server then
ignores as a precondition; so these go through the client's own signed request layer
(`Minio._put_object`, which passes headers through unchanged). MinIO checks the precondition
under the object's namespace lock and answers 412 `PreconditionFailed` to the loser
(upstream: minio/minio cmd/erasure-object.go:1261-1275, cmd/object-handlers-common.go:140-200
@ 7aac2a2c, Feb 2026); a 409 `ConditionalRequestConflict` (AWS, for racing writes) is treated
the same. A server that ignores the headers would silently overwrite: `probe_conditional_writes`
checks once per store and refuses to write state when the precondition is not honoured.

Every error leaves this module as `StoreError` (or `FileNotFoundError` for a missing
key) with a message that names the endpoint, bucket and remedy and never a credential.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from civicml.storage.base import ObjectInfo, Store, StoreConflict, StoreError, check_key
from civicml.storage.s3_settings import (  # noqa: F401  (re-exported: callers import these from here)
    ACCESS_KEY_VARS,
    ENV_ENDPOINT,
    ENV_REGION,
    ENV_SECURE,
    SECRET_KEY_VARS,
    S3Settings,
    parse_s3_uri,
    secret_env_mapping,
    store_secret_env,
)

T = TypeVar("T")


# S3 error codes that mean "try again": throttling and server-side hiccups.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "XMinioServerNotInitialized",
    }
)
# A precondition failed (412), or a racing conditional write (409 on AWS S3).
CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "InvalidSecurity"}
)


class S3Store(Store):
    """Objects under `s3://bucket/prefix/` on an S3-compatible server.

    Args:
        bucket: Bucket name; it must exist (the store never creates buckets: that is an
            operator's decision about versioning, lifecycle and access).
        prefix: Key prefix inside the bucket (`civicml/`), may be empty.
        settings: Endpoint and credentials; from the environment when None.
        attempts: Tries per operation for transient failures (connection refused/reset,
            timeouts, 5xx, SlowDown), with exponential backoff.
        backoff: First backoff in seconds (doubled per retry).
        connect_timeout: Seconds to wait for a TCP connection, per attempt.
        read_timeout: Seconds to wait for a response, per attempt.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        settings: S3Settings | None = None,
        attempts: int = 3,
        backoff: float = 0.25,
        connect_timeout: float = 2.0,
        read_timeout: float = 30.0,
    ):
        from minio import Minio

        self.settings = settings or S3Settings.from_env()
        self.bucket = bucket
        self.prefix = (prefix.strip("/") + "/") if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._bucket_checked = False
        self._conditional_checked = False
        # urllib3 retries stay off: this class retries whole operations itself with backoff, so an
        # unreachable endpoint fails in a few seconds instead of minio's default 5 retries x 5 minutes.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=urllib3.Retry(total=0, connect=0, read=0, redirect=0, status=0),
            maxsize=10,
        )
        s = self.settings
        try:
            self.client = Minio(
                s.endpoint,
                access_key=s.access_key,
                secret_key=s.secret_key,
                session_token=s.session_token,
                secure=s.secure,
                region=s.region,
                http_client=http,
            )
        except ValueError as err:
            raise StoreError(f"invalid S3 endpoint {s.endpoint!r} ({ENV_ENDPOINT}): {s.redact(str(err))}") from None

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> S3Store:
        """Open `s3://bucket/prefix` with settings from the environment."""
        bucket, prefix = parse_s3_uri(uri)
        return cls(bucket, prefix, **kwargs)

    def describe(self) -> str:
        scheme = "https" if self.settings.secure else "http"
        return f"{self.uri} (endpoint {scheme}://{self.settings.endpoint})"

    # -- error handling ------------------------------------------------------------
    def _error(self, action: str, err: Exception) -> StoreError:
        """One clear, credential-free StoreError for a non-transient failure."""
        from minio.error import InvalidResponseError, S3Error, ServerError

        where = self.describe()
        if isinstance(err, S3Error):
            if err.code == "NoSuchBucket":
                return self._no_bucket()
            if err.code in CREDENTIAL_CODES:
                msg = (
                    f"the object store at {where} refused the credentials while trying to {action} ({err.code}); "
                    "check MINIO_ACCESS_KEY / MINIO_SECRET_KEY (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) and "
                    f"that the user may read and write bucket {self.bucket!r}"
                )
            else:
                msg = f"the object store at {where} refused to {action}: {err.code}: {err.message}"
        elif isinstance(err, ServerError):
            msg = (
                f"the object store at {where} failed to {action}: HTTP {err.status_code} after {self.attempts} attempts"
            )
        elif isinstance(err, InvalidResponseError):
            msg = (
                f"the endpoint {where} did not answer like an S3 server while trying to {action}; "
                f"check {ENV_ENDPOINT} (host:port of MinIO/S3) and {ENV_SECURE}"
            )
        elif isinstance(err, (Urllib3HTTPError, OSError)):
            reason = getattr(err, "reason", None) or err
            msg = (
                f"cannot reach the object store at {where} to {action} after {self.attempts} attempts "
                f"({type(reason).__name__}: {_short(reason)}); is the server running and {ENV_ENDPOINT} right?"
            )
        else:
            msg = f"object store error at {where} while trying to {action}: {type(err).__name__}: {err}"
        return StoreError(self.settings.redact(msg))

    def _no_bucket(self) -> StoreError:
        return StoreError(
            f"bucket {self.bucket!r} does not exist at {self.describe()}; create it (e.g. "
            f"`mc mb --with-versioning ALIAS/{self.bucket}`) or fix storage.uri / CIVICML_STORE_URI"
        )

    def _transient(self, err: Exception) -> bool:
        from minio.error import S3Error, ServerError

        if isinstance(err, S3Error):
            return err.code in TRANSIENT_CODES
        if isinstance(err, ServerError):
            return err.status_code >= 500 or err.status_code == 429
        return isinstance(err, (Urllib3HTTPError, ConnectionError, TimeoutError))

    def _call(self, action: str, fn: Callable[[], T], missing_ok: bool = False) -> T:
        """Run `fn` with retries on transient failures; map everything else to StoreError.

        A missing key raises FileNotFoundError (the Store contract) unless `missing_ok`,
        in which case the S3Error is re-raised for the caller to interpret.
        """
        from minio.error import InvalidResponseError, MinioException, S3Error

        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except S3Error as err:
                if err.code == "NoSuchKey":
                    if missing_ok:
                        raise
                    raise FileNotFoundError(f"no object {err.object_name or ''!r} in store {self.uri}") from None
                last: Exception = err
            except (MinioException, InvalidResponseError, Urllib3HTTPError, OSError) as err:
                last = err
            if attempt == self.attempts or not self._transient(last):
                break
            time.sleep(delay)
            delay *= 2
        raise self._error(action, last) from None

    def _check_bucket(self) -> None:
        """Fail once, clearly, when the bucket is missing or the credentials are refused."""
        if self._bucket_checked:
            return
        if not self._call(f"check bucket {self.bucket!r}", lambda: self.client.bucket_exists(self.bucket)):
            raise self._no_bucket()
        self._bucket_checked = True

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    # -- Store interface --------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> None:
        self._check_bucket()
        name = self._key(key)
        # S3 PUT is atomic: readers see the old object or the new one, never a part.
        self._call(
            f"write {name}",
            lambda: self.client.put_object(self.bucket, name, io.BytesIO(data), len(data)),
        )

    def _conditional_put(self, key: str, data: bytes, condition: dict[str, str], lost: str) -> str:
        from minio.error import S3Error

        self._check_bucket()
        self._check_conditional()
        name = self._key(key)
        headers: dict[str, str | list[str] | tuple[str]] = {"Content-Type": "application/octet-stream", **condition}

        tries = 0

        def put() -> str:
            nonlocal tries
            tries += 1
            try:
                return self._etag(name, self.client._put_object(self.bucket, name, data, headers=headers).etag)
            except S3Error as err:
                if err.code in CONFLICT_CODES or (err.code == "NoSuchKey" and "If-Match" in condition):
                    if tries > 1 and self._holds(name, data):
                        # Our first attempt was applied but its answer was lost: not a conflict.
                        return self._etag(name, self.client.stat_object(self.bucket, name).etag)
                    raise StoreConflict(key, lost) from None
                raise

        return self._call(f"write {name}", put)

    def _etag(self, name: str, etag: str | None) -> str:
        """The etag the server sent for `name`; S3 sends one with every write and stat."""
        if etag is None:
            raise StoreError(f"the S3 server sent no ETag for {name!r} in {self.uri}; conditional writes need one")
        return etag

    def _holds(self, name: str, data: bytes) -> bool:
        resp = self.client.get_object(self.bucket, name)
        try:
            return resp.read() == data
        finally:
            resp.close()
            resp.release_conn()

    def create(self, key: str, data: bytes) -> str:
        return self._conditional_put(
            key, data, {"If-None-Match": "*"}, f"{key!r} already exists in {self.uri}; it is never overwritten"
        )

    def replace(self, key: str, data: bytes, if_match: str) -> str:
        return self._conditional_put(
            key,
            data,
            {"If-Match": f'"{if_match}"'},
            f"{key!r} in {self.uri} changed since it was read (another writer)",
        )

    def read(self, key: str) -> tuple[bytes, str]:
        self._check_bucket()
        name = self._key(key)

        def read() -> tuple[bytes, str]:
            resp = self.client.get_object(self.bucket, name)
            try:
                return resp.read(), (resp.headers.get("ETag") or "").strip('"')
            finally:
                resp.close()
                resp.release_conn()

        try:
            return self._call(f"read {name}", read)
        except FileNotFoundError:
            raise FileNotFoundError(f"no object {key!r} in store {self.uri}") from None

    def _check_conditional(self) -> None:
        """Refuse to write state to a server that ignores preconditions (checked once per store)."""
        if self._conditional_checked:
            return
        probe = self._key(f".probe/conditional-{os.getpid()}-{time.time_ns()}")
        from minio.error import S3Error

        try:
            self.client._put_object(self.bucket, probe, b"1", headers={"If-None-Match": "*"})
            try:
                self.client._put_object(self.bucket, probe, b"2", headers={"If-None-Match": "*"})
                honoured = False
            except S3Error as err:
                honoured = err.code in CONFLICT_CODES
        except Exception as err:  # noqa: BLE001 - any failure becomes one clear StoreError
            raise self._error("check conditional writes", err) from None
        finally:
            try:
                self.client.remove_object(self.bucket, probe)
            except Exception:  # noqa: BLE001, S110 - best effort; a leftover probe object is harmless
                pass
        if not honoured:
            raise StoreError(
                f"the object store at {self.describe()} ignores conditional writes (If-None-Match: *): two "
                "writers could overwrite each other's versions, approvals and audit records, so civicml refuses to "
                "write state there; use MinIO RELEASE.2024-11 or newer, AWS S3, or another server that honours "
                "If-None-Match / If-Match on PutObject"
            )
        self._conditional_checked = True

    def put_file(self, key: str, path: str | Path) -> None:
        self._check_bucket()
        name = self._key(key)
        self._call(f"upload {name}", lambda: self.client.fput_object(self.bucket, name, str(path)))

    def get_bytes(self, key: str) -> bytes:
        return self.read(key)[0]

    def get_file(self, key: str, path: str | Path) -> Path:
        self._check_bucket()
        name = self._key(key)
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._call(f"download {name}", lambda: self.client.fget_object(self.bucket, name, str(p)))
        except FileNotFoundError:
            raise FileNotFoundError(f"no object {key!r} in store {self.uri}") from None
        return p

    def exists(self, key: str) -> bool:
        from minio.error import S3Error

        self._check_bucket()
        name = self._key(key)
        try:
            self._call(f"check {name}", lambda: self.client.stat_object(self.bucket, name), missing_ok=True)
        except S3Error:
            return False
        return True

    def list_info(self, prefix: str = "") -> list[ObjectInfo]:
        self._check_bucket()
        full = self.prefix + prefix

        def listing() -> list[ObjectInfo]:
            out = []
            for obj in self.client.list_objects(self.bucket, prefix=full, recursive=True):
                if obj.is_dir or obj.is_delete_marker:
                    continue
                stamp = obj.last_modified.timestamp() if obj.last_modified else 0.0
                out.append(ObjectInfo(obj.object_name[len(self.prefix) :], int(obj.size or 0), stamp))
            return out

        return sorted(self._call(f"list {full or '/'}", listing), key=lambda o: o.key)

    def list_keys(self, prefix: str = "") -> list[str]:
        return [o.key for o in self.list_info(prefix)]

    def delete(self, key: str) -> None:
        self._check_bucket()
        name = self._key(key)
        # In a versioned bucket this adds a delete marker; older object versions stay until the
        # bucket's lifecycle rule expires them (see docs/storage.md).
        self._call(f"delete {name}", lambda: self.client.remove_object(self.bucket, name))


def _short(reason: object) -> str:
    """The useful tail of a urllib3 reason (`[Errno 111] Connection refused`), without the URL."""
    text = str(reason)
    marker = "): "
    if marker in text:
        text = text.rsplit(marker, 1)[-1]
    return text.strip("\"' )")
