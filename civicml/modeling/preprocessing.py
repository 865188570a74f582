"""Feature preparation shared by training, evaluation and serving.

Categorical columns are cast to pandas `category` with the categories fixed at
training time: pandas 3 reads text as `str`, which XGBoost rejects, and fixing the
categories makes an unseen value become "missing" instead of shifting the codes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd


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
            out[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
        for c, cats in self.categorical.items():
            s = df[c]
            s = s.astype(object).where(s.notna(), None)
            s = s.map(lambda v: None if v is None else str(v))
            out[c] = pd.Categorical(s, categories=cats)
        return pd.DataFrame(out, index=df.index)

    def encode_target(self, y: pd.Series) -> np.ndarray:
        """0/1 labels for classification (positive = the second class), floats for regression."""
        if self.task != "binary_classification":
            return y.astype("float64").to_numpy()
        positive = self.classes[1]
        return (y == positive).astype("int64").to_numpy()
