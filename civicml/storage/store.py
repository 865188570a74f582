"""Names older callers import from `civicml.storage.store`; the code lives in base, local and factory."""

from civicml.storage.base import ObjectInfo, Store, StoreConflict, StoreError, _check_key, check_key
from civicml.storage.factory import open_store, read_uri, resolve_store_uri
from civicml.storage.local import LocalStore, current_umask

__all__ = [
    "LocalStore",
    "ObjectInfo",
    "Store",
    "StoreConflict",
    "StoreError",
    "_check_key",
    "check_key",
    "current_umask",
    "open_store",
    "read_uri",
    "resolve_store_uri",
]
