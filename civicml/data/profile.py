"""Reference profile of each feature, stored with a model version for later drift checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SAMPLE_SIZE = 5000
MISSING = "<missing>"
BINS = 10


def build_profile(df: pd.DataFrame, numeric: list[str], categorical: list[str], seed: int = 0) -> dict[str, Any]:
    """Summarise each feature: quantile bins and a sample (numeric) or frequencies (categorical).

    The bins let PSI be computed later; the seeded sample lets a two-sample KS test run
    without keeping the training data.
    """
    rng = np.random.default_rng(seed)
    prof: dict[str, Any] = {"rows": int(len(df)), "features": {}}
    for col in numeric:
        s = df[col].astype("float64")
        vals = s.dropna().to_numpy()
        edges = np.unique(np.quantile(vals, np.linspace(0, 1, BINS + 1))) if len(vals) else np.array([])
        counts = np.histogram(vals, bins=edges)[0] if len(edges) > 1 else np.array([len(vals)])
        sample = rng.choice(vals, size=min(SAMPLE_SIZE, len(vals)), replace=False) if len(vals) else vals
        prof["features"][col] = {
            "kind": "numeric",
            "null_rate": float(s.isna().mean()),
            "mean": float(np.mean(vals)) if len(vals) else None,
            "std": float(np.std(vals)) if len(vals) else None,
            "min": float(np.min(vals)) if len(vals) else None,
            "max": float(np.max(vals)) if len(vals) else None,
            "bin_edges": edges.tolist(),
            "bin_fractions": (counts / max(counts.sum(), 1)).tolist(),
            "sample": np.sort(sample).tolist(),
        }
    for col in categorical:
        s = df[col]
        prof["features"][col] = {
            "kind": "categorical",
            "null_rate": float(s.isna().mean()),
            "frequencies": category_frequencies(s),
        }
    return prof


def category_frequencies(s: pd.Series) -> dict[str, float]:
    """Share of rows per value as text (missing as `<missing>`), sorted by text.

    Counted on codes (one `factorize`, one `bincount`), so a `category` column is never turned
    into a string per row; values whose text coincides (`1` and `"1"`) are one entry.
    """
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    counts = np.bincount(codes + 1, minlength=len(uniques) + 1)
    merged: dict[str, int] = {}
    for text, n in zip([MISSING, *(str(u) for u in uniques)], counts.tolist()):
        if n:
            merged[text] = merged.get(text, 0) + n
    total = sum(merged.values())
    return {text: merged[text] / total for text in sorted(merged)}
