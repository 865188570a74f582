"""Request validation built from a model version's data contract.

Each served version gets a pydantic model generated from its `data/contract.json`
and the feature list of its saved spec: features are required, other contract
columns (e.g. sensitive attributes, kept for fairness monitoring) are optional, the
target and anything unknown are refused. Types are strict (no "12" for a number),
ranges and categories come from the contract, so a record either validates
completely or the request is refused with a 422 naming the field.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, create_model

from civicml.config import ColumnSpec
from civicml.modeling.preprocessing import FeatureSpec

# Open Inference Protocol v2 datatypes accepted per column kind.
NUMERIC_DATATYPES = frozenset(
    {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
BYTES = "BYTES"
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _field_type(col: ColumnSpec | None, categories: list[str] | None) -> Any:
    if col is not None and col.kind == "numeric" or (col is None and categories is None):
        # Models compute in float32 (XGBoost refuses what overflows it): the float32 range is the widest bound.
        constraints: dict[str, Any] = {"strict": True, "allow_inf_nan": False, "ge": -FLOAT32_MAX, "le": FLOAT32_MAX}
        if col is not None and col.min is not None:
            constraints["ge"] = max(col.min, -FLOAT32_MAX)
        if col is not None and col.max is not None:
            constraints["le"] = min(col.max, FLOAT32_MAX)
        return Annotated[float, Field(**constraints)]
    cats = categories if categories is not None else (col.categories if col is not None else None)
    if cats:
        return Literal[tuple(cats)]
    return StrictStr


class RecordSchema:
    """Validator of single input records for one model version."""

    def __init__(self, spec: FeatureSpec, contract: list[ColumnSpec], target: str | None = None):
        by_name = {c.name: c for c in contract}
        self.features = spec.features
        self.kinds: dict[str, str] = {}
        fields: dict[str, Any] = {}
        for name in spec.features:
            col = by_name.get(name)
            # The model's own categories win over the contract's: a value the model never saw is unknown to it.
            cats = spec.categorical.get(name) if name in spec.categorical else None
            kind = "categorical" if name in spec.categorical else "numeric"
            typ = _field_type(col if col is not None else ColumnSpec(name=name, kind=kind), cats)
            if col is not None and col.nullable:
                fields[name] = (typ | None, ...)
            else:
                fields[name] = (typ, ...)
            self.kinds[name] = kind
        self.optional = []
        for col in contract:
            if col.name in fields or col.name == target or col.name == spec.target:
                continue
            fields[col.name] = (_field_type(col, None) | None, None)
            self.optional.append(col.name)
            # Optional columns (e.g. sensitive attributes, logged for fairness monitoring) keep their
            # contract kind, so the v2 route accepts BYTES for categorical ones.
            self.kinds.setdefault(col.name, col.kind)
        self.model: type[BaseModel] = create_model("Record", __config__=ConfigDict(extra="forbid"), **fields)

    def validate(self, records: Any, loc: tuple[Any, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Validate a list of records.

        Args:
            records: The parsed JSON value that should be a non-empty list of objects.
            loc: Location prefix for errors, e.g. ("body", "records").

        Returns:
            (clean records, errors in FastAPI's format); records are returned only when errors is empty.
        """
        if not isinstance(records, list) or not records:
            return [], [
                {
                    "type": "list_type",
                    "loc": list(loc),
                    "msg": "Input should be a non-empty list of records (objects of feature: value)",
                    "input": None,
                }
            ]
        clean, errors = [], []
        for i, rec in enumerate(records):
            try:
                obj = self.model.model_validate(rec)
            except ValidationError as err:
                for e in err.errors(include_url=False, include_context=False):
                    errors.append(_jsonable({**e, "loc": [*loc, i, *e["loc"]]}))
                continue
            clean.append(obj.model_dump())
        return (clean if not errors else []), errors

    def metadata_inputs(self) -> list[dict[str, Any]]:
        """v2 metadata tensors: one per feature column."""
        return [
            {"name": n, "datatype": "FP64" if self.kinds[n] == "numeric" else BYTES, "shape": [-1]}
            for n in self.features
        ]

    def tensors_to_records(self, inputs: Any, loc: tuple[Any, ...]) -> tuple[list[dict[str, Any]], list[dict]]:
        """Turn v2 input tensors (one per column) into records, checking names, shapes and datatypes."""
        if not isinstance(inputs, list) or not inputs:
            msg = "inputs must be a non-empty list of tensors {name, shape, datatype, data}"
            return [], [_problem("list_type", [*loc], msg, msg_last=True)]
        columns: dict[str, list[Any]] = {}
        errors: list[dict[str, Any]] = []
        for i, tensor in enumerate(inputs):
            rows = len(next(iter(columns.values()))) if columns else None
            name, data, problem = self._tensor(tensor, loc, i, columns, rows)
            if problem is not None:
                errors.append(problem)
            elif name is not None:
                columns[name] = data
        for name in self.features:
            if name not in columns and not any(e["loc"][len(loc)] == name for e in errors if len(e["loc"]) > len(loc)):
                errors.append(_problem("missing", [*loc, name], "Field required"))
        if errors:
            return [], errors
        rows = len(next(iter(columns.values()))) if columns else 0
        records = [{k: v[r] for k, v in columns.items()} for r in range(rows)]
        clean, errs = self.validate(records, loc=(*loc, "rows"))
        for e in errs:
            # Name the column first (loc: inputs/<column>/<row>) so the field is the visible part.
            if len(e["loc"]) >= len(loc) + 3:
                row, col = e["loc"][len(loc) + 1], e["loc"][len(loc) + 2]
                e["loc"] = [*loc, col, row, *e["loc"][len(loc) + 3 :]]
        return clean, errs

    def _tensor(
        self, t: Any, loc: tuple[Any, ...], i: int, columns: dict[str, list[Any]], rows: int | None
    ) -> tuple[str | None, list[Any], dict[str, Any] | None]:
        """One input tensor as (column name, its values, None) or (name or None, [], the problem with it)."""
        if not isinstance(t, dict):
            return None, [], _problem("dict_type", [*loc, i], "tensor must be an object")
        name, shape, datatype, data = t.get("name"), t.get("shape"), t.get("datatype"), t.get("data")
        if not isinstance(name, str):
            return None, [], _problem("missing", [*loc, i, "name"], "tensor needs a string name")
        where = [*loc, name]
        if name not in self.kinds and name not in self.optional:
            return (
                name,
                [],
                _problem(
                    "extra_forbidden", where, f"unknown input {name!r}; expected one of {self.features}", msg_last=True
                ),
            )
        if name in columns:
            return name, [], _problem("value_error", where, "input given twice")
        if isinstance(data, list) and data and isinstance(data[0], list):
            data = [v for row in data for v in (row if isinstance(row, list) else [row])]
        if not isinstance(data, list):
            return name, [], _problem("list_type", [*where, "data"], "data must be a list")
        problem = self._shape_problem(name, where, shape, datatype, len(data), rows)
        return name, (data if problem is None else []), problem

    def _shape_problem(
        self, name: str, where: list[Any], shape: Any, datatype: Any, n_data: int, rows: int | None
    ) -> dict[str, Any] | None:
        """What is wrong with a tensor's shape and datatype (one column of `rows` values), or None."""
        if not (
            isinstance(shape, list) and shape and all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
        ):
            return _problem(
                "value_error", [*where, "shape"], "shape must be a list of integers, e.g. [3] or [3, 1]", msg_last=True
            )
        if math.prod(shape) != n_data or (len(shape) > 1 and any(s != 1 for s in shape[1:])):
            msg = f"shape {shape} does not match {n_data} data values (one column: [n] or [n, 1])"
            return _problem("value_error", [*where, "shape"], msg, msg_last=True)
        kind = self.kinds.get(name, "numeric")
        if datatype not in (NUMERIC_DATATYPES if kind == "numeric" else {BYTES}):
            msg = (
                f"datatype {datatype!r} is not valid for {kind} input {name!r}; "
                f"use {'FP64' if kind == 'numeric' else 'BYTES'}"
            )
            return _problem("value_error", [*where, "datatype"], msg, msg_last=True)
        if rows is not None and n_data != rows:
            return _problem(
                "value_error", [*where, "shape"], f"has {n_data} rows but other inputs have {rows}", msg_last=True
            )
        return None


def _problem(kind: str, loc: list[Any], msg: str, msg_last: bool = False) -> dict[str, Any]:
    """One problem in FastAPI's error format.

    The keys' order is part of the answer's bytes: the tensor-shape messages were written with `msg` last.
    """
    if msg_last:
        return {"type": kind, "loc": loc, "input": None, "msg": msg}
    return {"type": kind, "loc": loc, "msg": msg, "input": None}


def _jsonable(e: dict[str, Any]) -> dict[str, Any]:
    out = dict(e)
    value = out.get("input")
    if not isinstance(value, (str, int, float, bool, type(None), list, dict)):
        out["input"] = repr(value)
    return out
