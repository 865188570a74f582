"""Open a store from its URI: the backend is chosen by the URI's scheme from a registry of builders.

The shape of MLflow's store registry (`mlflow/tracking/registry.py` `StoreRegistry.register` /
`get_store_builder`, and `_register_tracking_stores` registering `''` and `file` for the file store):
a scheme maps to a function that builds the store, so adding a backend is one `register` call and no
caller tests schemes. A builder imports its client lazily: a local run never imports minio.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from civicml.storage.base import Store, StoreError
from civicml.storage.local import LocalStore

StoreBuilder = Callable[[str], Store]


class StoreRegistry:
    """Builders of stores by URI scheme (`''` is a plain directory path)."""

    def __init__(self) -> None:
        self._builders: dict[str, StoreBuilder] = {}

    def register(self, scheme: str, builder: StoreBuilder) -> None:
        """Build stores whose URI starts with `scheme://` (or has no scheme, for `''`) with `builder`."""
        self._builders[scheme] = builder

    @staticmethod
    def scheme_of(uri: str) -> str:
        """`s3` for `s3://bucket/prefix`, `file` for `file:///dir`, `''` for a directory path."""
        return uri.partition("://")[0] if "://" in uri else ""

    def get_store(self, uri: str) -> Store:
        """The store at `uri`.

        Raises:
            StoreError: no backend is registered for the URI's scheme (names the schemes there are).
        """
        builder = self._builders.get(self.scheme_of(uri))
        if builder is None:
            raise StoreError(f"unsupported store URI {uri!r}: use a directory path or s3://bucket/prefix")
        return builder(uri)


def _local(uri: str) -> Store:
    return LocalStore(uri.removeprefix("file://"))


def _s3(uri: str) -> Store:
    from civicml.storage.s3 import S3Store  # lazy: the minio client is only needed for s3://

    return S3Store.from_uri(uri)


STORES = StoreRegistry()
STORES.register("", _local)
STORES.register("file", _local)
STORES.register("s3", _s3)


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
    return STORES.get_store(uri if explicit and uri else resolve_store_uri(uri))


def read_uri(uri: str) -> bytes:
    """Read one object given as `s3://bucket/key` using the environment's S3 settings."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    return STORES.get_store(f"s3://{bucket}").get_bytes(key)
