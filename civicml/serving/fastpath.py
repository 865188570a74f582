"""The server's hot path: validated records to a float matrix to XGBoost's `inplace_predict`.

Batch scoring (`TrainedModel.score`) builds a pandas frame and encodes it with
`FeatureSpec.transform`; for one request of one row that costs far more than the prediction. The
server builds the same numbers directly, from maps made once per loaded version from the saved
spec (the spec's meaning is not changed here, only read):

* a numeric feature is `float(value)`; a missing value (None, NaN) or one that is not a number
  is NaN, as `pd.to_numeric(errors="coerce")` makes it;
* a categorical feature is the position of its value among the spec's training categories (the
  code `pd.Categorical` gives it); a value compared as text when it is not a string, as
  `preprocessing._as_category` does; a missing or unseen value is NaN (XGBoost's missing).

XGBoost evaluates a categorical split on the code it is given (the tree stores the category
sets), so the codes above reach the same leaves as the pandas frame's. The booster runs with one
thread (requests are concurrent already) over the iteration range the scikit-learn wrapper would
use (the best iteration when training stopped early). `tests/unit/test_fastpath.py` checks the
scores equal `TrainedModel.score` on mixed numeric, categorical, missing and unseen values.
Other families (scikit-learn pipelines) keep the frame path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from civicml.modeling.estimators import TrainedModel

NAN = float("nan")


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return NAN if value is None else float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


class RowEncoder:
    """Records (dicts of feature: value) to the model's float matrix, in the spec's feature order."""

    def __init__(self, spec) -> None:
        self.numeric: list[str] = list(spec.numeric)
        self.codes: list[tuple[str, dict[str, float]]] = [
            (name, {str(cat): float(i) for i, cat in enumerate(cats)}) for name, cats in spec.categorical.items()
        ]
        self.width = len(self.numeric) + len(self.codes)

    def _code(self, table: dict[str, float], value: Any) -> float:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return NAN
        return table.get(value if isinstance(value, str) else str(value), NAN)

    def encode(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        """A (rows, features) float64 array; a feature absent from a record counts as missing."""
        out = np.empty((len(records), self.width), dtype=np.float64)
        for i, rec in enumerate(records):
            out[i] = [_number(rec.get(c)) for c in self.numeric] + [
                self._code(table, rec.get(c)) for c, table in self.codes
            ]
        return out


class Scorer:
    """Scores records for one loaded version: the fast path for XGBoost, the frame path otherwise."""

    def __init__(self, model: TrainedModel) -> None:
        self.model = model
        self.encoder = RowEncoder(model.spec)
        self.booster = None
        self.iteration_range = (0, 0)
        if model.family == "xgboost":
            self.booster = model.estimator.get_booster()
            self.booster.set_param({"nthread": 1})
            best = self.booster.attr("best_iteration")
            # The scikit-learn wrapper's own rule (xgboost sklearn.py `_get_iteration_range`).
            self.iteration_range = (0, int(best) + 1) if best is not None else (0, 0)

    def score(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        """Probability of the positive class (classification) or the value (regression), float64."""
        if self.booster is None:
            frame = pd.DataFrame.from_records(list(records), columns=self.model.spec.features)
            return np.asarray(self.model.score(frame), dtype="float64")
        x = self.encoder.encode(records)
        out = self.booster.inplace_predict(x, iteration_range=self.iteration_range, validate_features=False)
        return np.asarray(out, dtype="float64").reshape(len(records))

    def labels(self, score: np.ndarray) -> np.ndarray:
        """0/1 at the model's own threshold (classification) or the score itself (regression)."""
        if self.model.task == "binary_classification":
            return (score >= self.model.threshold).astype("int64")
        return score
