"""Open a store from its URI: the backend is chosen by scheme (a directory path, `file://` or `s3://`)."""

from __future__ import annotations

import os

from civicml.storage.base import Store, StoreError
from civicml.storage.local import LocalStore


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
        from civicml.storage.s3 import S3Store  # lazy: the minio client is only needed for s3://

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
