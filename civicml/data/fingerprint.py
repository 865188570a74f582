"""A sha256 fingerprint of the exact rows (and columns) used for training.

The definition is versioned, and the version is recorded next to the fingerprint in a model's
lineage (`data_fingerprint_version`; absent means 1), so a fingerprint is only ever compared with
one computed by the same definition:

* **v1** (to civicml 0.1, session 3): categorical columns held one Python string per row
  (`object`, missing as `None`); sha256 over `name:dtype` of every column, then pandas'
  `hash_pandas_object` of every row.
* **v2** (current, issue 18): categorical columns are pandas `category` (codes plus one string
  per distinct value) from validate-data on. The same sha256, with such columns' dtype written as
  `category` and their rows hashed through their codes (pandas hashes each category once and
  takes the hash by code). The fingerprint still depends only on the values, not on which
  categories are declared or their order.

`fingerprint(frame, 1)` of a v2 frame equals what v1 computed on the same data, which is how
`civicml reproduce` checks a version trained before v2.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FINGERPRINT_VERSION = 2
_VERSIONS = (1, 2)


def recorded_version(lineage: Mapping[str, Any]) -> int:
    """The fingerprint definition a version's lineage was recorded with (1 before it was recorded)."""
    return int(lineage.get("data_fingerprint_version") or 1)


def fingerprint(df: pd.DataFrame, version: int = FINGERPRINT_VERSION) -> str:
    """Return `sha256:<hex>` over column names, dtypes and every row's values, in order.

    Args:
        df: The prepared rows (validate-data's frame, or one training shard of it).
        version: The fingerprint definition (module docstring); the current one by default.

    Raises:
        ValueError: an unknown definition version.
    """
    import pandas as pd

    if version not in _VERSIONS:
        raise ValueError(f"unknown data fingerprint version {version}; this civicml knows {list(_VERSIONS)}")
    if version == 1:
        df = _as_v1(df)
    h = hashlib.sha256()
    h.update("\x1f".join(f"{c}:{df[c].dtype}" for c in df.columns).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return "sha256:" + h.hexdigest()


def _as_v1(df: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as v1 saw them: Python strings (`object`), missing as `None`."""
    import pandas as pd

    cats = [c for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)]
    if not cats:
        return df
    return df.assign(**{c: df[c].astype(object).where(df[c].notna(), None) for c in cats})
