"""A sha256 fingerprint of the exact rows (and columns) used for training."""

from __future__ import annotations

import hashlib

import pandas as pd


def fingerprint(df: pd.DataFrame) -> str:
    """Return `sha256:<hex>` over column names, dtypes and every row's values, in order."""
    h = hashlib.sha256()
    h.update("\x1f".join(f"{c}:{df[c].dtype}" for c in df.columns).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return "sha256:" + h.hexdigest()
