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

`DensePredict` calls XGBoost's C function `XGBoosterPredictFromDense` (what `inplace_predict`
calls for a numpy array) with the arguments `inplace_predict` would send, made once per loaded
version: for one row, `inplace_predict`'s Python side (type checks over every input kind, JSON
encoding of its arguments, a class defined per call to read the output) cost about 60% of the
call (measured: 233 µs against 95 µs for the same row and model).
"""

from __future__ import annotations

import ctypes
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from civicml.modeling.estimators import TrainedModel

NAN = float("nan")
log = logging.getLogger("civicml.serving")


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


_DENSE_F8 = b'{"data": [%d, false], "strides": null, "descr": [["", "<f8"]], "typestr": "<f8", "shape": [%d, %d], '
_DENSE_F8 += b'"version": 3}'


class DensePredict:
    """`booster.inplace_predict(x, iteration_range=..., validate_features=False)` for C-ordered float64 `x`.

    The same C call with the same arguments: `iteration_range`, `missing` NaN, value (not margin)
    predictions, no base margin. Returns a float64 copy of the (rows,) output (the library's
    buffer is reused by the next call on this thread).
    """

    def __init__(self, booster: Any, iteration_range: tuple[int, int]) -> None:
        from xgboost import core

        self.core, self.handle = core, booster.handle
        self.iteration_range = iteration_range
        self.call = core._LIB.XGBoosterPredictFromDense
        # Exactly what `Booster.inplace_predict` builds for these parameters (xgboost core.py).
        self.args = core.make_jcargs(
            type=0,
            training=False,
            iteration_begin=int(iteration_range[0]),
            iteration_end=int(iteration_range[1]),
            missing=NAN,
            strict_shape=False,
            cache_id=0,
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Scores of the rows of `x` (C-contiguous float64, one column per feature)."""
        c = self.core
        shape, dims, preds = ctypes.POINTER(c.c_bst_ulong)(), c.c_bst_ulong(), ctypes.POINTER(ctypes.c_float)()
        # The array interface `xgboost._data_utils.array_interface` writes for such an array.
        rows, cols = x.shape
        view = _DENSE_F8 % (x.ctypes.data, rows, cols)
        null = ctypes.c_void_p()
        c._check_call(self.call(self.handle, view, self.args, null, *map(ctypes.byref, (shape, dims, preds))))
        size = math.prod(shape[i] for i in range(dims.value))
        if size != rows:
            raise ValueError(f"the model returned {size} values for {rows} rows; one score per row was expected")
        return np.ctypeslib.as_array(preds, (size,)).astype(np.float64)


def _checked(direct: DensePredict, booster: Any, encoder: RowEncoder) -> Callable[[np.ndarray], np.ndarray]:
    """`direct` if it scores a probe row as `inplace_predict` does, else `inplace_predict` itself.

    DensePredict reaches into xgboost's private `core` (pinned in constraints.txt); a different
    xgboost may change what it relies on. The check runs once per loaded version.
    """

    def inplace(x: np.ndarray) -> np.ndarray:
        out = booster.inplace_predict(x, iteration_range=direct.iteration_range, validate_features=False)
        return np.asarray(out, dtype="float64").reshape(len(x))

    probe = encoder.encode([{}])  # every feature missing: a valid row for any model
    expected = inplace(probe)
    try:
        got = direct(probe)
    except Exception as err:  # noqa: BLE001  (any failure of the private path means: do not use it)
        log.warning("xgboost's direct predict call is not usable here (%s); using inplace_predict", err)
        return inplace
    if not np.array_equal(got, expected):
        log.warning("xgboost's direct predict call disagrees with inplace_predict; using inplace_predict")
        return inplace
    return direct


class Scorer:
    """Scores records for one loaded version: the fast path for XGBoost, the frame path otherwise."""

    def __init__(self, model: TrainedModel) -> None:
        self.model = model
        self.encoder = RowEncoder(model.spec)
        self.booster = None
        self.predict: Callable[[np.ndarray], np.ndarray] | None = None
        self.iteration_range = (0, 0)
        if model.family == "xgboost":
            self.booster = model.estimator.get_booster()
            self.booster.set_param({"nthread": 1})
            best = self.booster.attr("best_iteration")
            # The scikit-learn wrapper's own rule (xgboost sklearn.py `_get_iteration_range`).
            self.iteration_range = (0, int(best) + 1) if best is not None else (0, 0)
            self.predict = _checked(DensePredict(self.booster, self.iteration_range), self.booster, self.encoder)

    def score(self, records: Sequence[dict[str, Any]]) -> np.ndarray:
        """Probability of the positive class (classification) or the value (regression), float64."""
        if self.predict is None:
            frame = pd.DataFrame.from_records(list(records), columns=self.model.spec.features)
            return np.asarray(self.model.score(frame), dtype="float64")
        return self.predict(self.encoder.encode(records))

    def labels(self, score: np.ndarray) -> np.ndarray:
        """0/1 at the model's own threshold (classification) or the score itself (regression)."""
        if self.model.task == "binary_classification":
            return (score >= self.model.threshold).astype("int64")
        return score
