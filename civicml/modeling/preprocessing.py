"""Feature preparation shared by training, evaluation and serving.

Categorical columns are cast to pandas `category` with the categories fixed at
training time: pandas 3 reads text as `str`, which XGBoost rejects, and fixing the
categories makes an unseen value become "missing" instead of shifting the codes.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@functools.lru_cache(maxsize=256)
def _category_lookup(categories: tuple[str, ...]) -> tuple[pd.Index, pd.CategoricalDtype]:
    return pd.Index(categories, dtype=object), pd.CategoricalDtype(list(categories))


def _as_category(s: pd.Series, categories: list[str]) -> pd.Categorical:
    """Codes against the fixed training categories; missing and unseen values become missing.

    Vectorised through an index lookup (no per-value Python call): this runs on every served
    request, and pandas is deprecating Categorical construction from values outside the categories.
    """
    index, dtype = _category_lookup(tuple(categories))
    if isinstance(s.dtype, pd.CategoricalDtype):
        # Look up each distinct value once and take the result by code (validate-data writes
        # categoricals as `category`): no string per row.
        lookup = _codes_of(index, s.cat.categories.to_numpy(dtype=object))
        raw = s.cat.codes.to_numpy()
        codes = np.where(raw >= 0, lookup[raw] if len(lookup) else -1, -1)
        return pd.Categorical.from_codes(codes, dtype=dtype)
    return pd.Categorical.from_codes(_codes_of(index, s.to_numpy(dtype=object, na_value=None)), dtype=dtype)


def _codes_of(index: pd.Index, values: np.ndarray) -> np.ndarray:
    """Positions of `values` in the training categories; -1 for missing and unseen values."""
    if len(values) and pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        # Numbers (or mixed values) used as category labels: compare them as text, as at training time.
        values = np.array([None if v is None else str(v) for v in values], dtype=object)
    return index.get_indexer(values)


@dataclass
class FeatureSpec:
    """Which columns a model uses and how to encode them; saved as JSON with the model."""

    target: str
    task: str
    numeric: list[str]
    categorical: dict[str, list[str]]
    classes: list[Any] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        """All feature columns in model order."""
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        """Inverse of `to_dict`."""
        return cls(**d)

    @classmethod
    def fit(
        cls, train: pd.DataFrame, target: str, task: str, numeric: list[str], categorical: list[str]
    ) -> FeatureSpec:
        """Learn categories and target classes from the training split only."""
        cats = {c: sorted(str(v) for v in train[c].dropna().unique()) for c in categorical}
        classes: list[Any] = []
        if task == "binary_classification":
            classes = sorted(train[target].unique().tolist(), key=lambda v: (str(type(v)), v))
            classes = [c.item() if hasattr(c, "item") else c for c in classes]
        return cls(target=target, task=task, numeric=list(numeric), categorical=cats, classes=classes)

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Feature frame with float64 numerics and fixed-category categoricals, in model order."""
        out = {}
        for c in self.numeric:
            s = df[c]
            out[c] = s.astype("float64") if pd.api.types.is_numeric_dtype(s) else pd.to_numeric(s, errors="coerce")
        for c, cats in self.categorical.items():
            out[c] = _as_category(df[c], cats)
        return pd.DataFrame(out, index=df.index)

    def encode_target(self, y: pd.Series) -> np.ndarray:
        """0/1 labels for classification (positive = the second class), floats for regression."""
        if self.task != "binary_classification":
            return y.astype("float64").to_numpy()
        positive = self.classes[1]
        return (y == positive).astype("int64").to_numpy()
