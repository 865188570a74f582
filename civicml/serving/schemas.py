"""Request validation built from a model version's data contract.

Each served version gets a pydantic model generated from its `data/contract.json`
and the feature list of its saved spec: features are required, other contract
columns (e.g. sensitive attributes, kept for fairness monitoring) are optional, the
target and anything unknown are refused. Types are strict (no "12" for a number),
ranges and categories come from the contract, so a record either validates
completely or the request is refused with a 422 naming the field.
"""

from __future__ import annotations

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
                    e["loc"] = [*loc, i, *e["loc"]]
                    errors.append(_jsonable(e))
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
            return [], [
                {
                    "type": "list_type",
                    "loc": list(loc),
                    "input": None,
                    "msg": "inputs must be a non-empty list of tensors {name, shape, datatype, data}",
                }
            ]
        columns: dict[str, list[Any]] = {}
        errors: list[dict[str, Any]] = []
        rows: int | None = None
        for i, t in enumerate(inputs):
            where = [*loc, i]
            if not isinstance(t, dict):
                errors.append({"type": "dict_type", "loc": where, "msg": "tensor must be an object", "input": None})
                continue
            name, shape, datatype, data = t.get("name"), t.get("shape"), t.get("datatype"), t.get("data")
            if not isinstance(name, str):
                errors.append(
                    {"type": "missing", "loc": [*where, "name"], "msg": "tensor needs a string name", "input": None}
                )
                continue
            where = [*loc, name]
            if name not in self.kinds and name not in self.optional:
                errors.append(
                    {
                        "type": "extra_forbidden",
                        "loc": where,
                        "input": None,
                        "msg": f"unknown input {name!r}; expected one of {self.features}",
                    }
                )
                continue
            if name in columns:
                errors.append({"type": "value_error", "loc": where, "msg": "input given twice", "input": None})
                continue
            if isinstance(data, list) and data and isinstance(data[0], list):
                data = [v for row in data for v in (row if isinstance(row, list) else [row])]
            if not isinstance(data, list):
                errors.append(
                    {"type": "list_type", "loc": [*where, "data"], "msg": "data must be a list", "input": None}
                )
                continue
            if not (
                isinstance(shape, list) and shape and all(isinstance(s, int) and not isinstance(s, bool) for s in shape)
            ):
                errors.append(
                    {
                        "type": "value_error",
                        "loc": [*where, "shape"],
                        "input": None,
                        "msg": "shape must be a list of integers, e.g. [3] or [3, 1]",
                    }
                )
                continue
            n = 1
            for s in shape:
                n *= s
            if n != len(data) or (len(shape) > 1 and any(s != 1 for s in shape[1:])):
                errors.append(
                    {
                        "type": "value_error",
                        "loc": [*where, "shape"],
                        "input": None,
                        "msg": f"shape {shape} does not match {len(data)} data values (one column: [n] or [n, 1])",
                    }
                )
                continue
            kind = self.kinds.get(name, "numeric")
            allowed = NUMERIC_DATATYPES if kind == "numeric" else {BYTES}
            if datatype not in allowed:
                errors.append(
                    {
                        "type": "value_error",
                        "loc": [*where, "datatype"],
                        "input": None,
                        "msg": f"datatype {datatype!r} is not valid for {kind} input {name!r}; "
                        f"use {'FP64' if kind == 'numeric' else 'BYTES'}",
                    }
                )
                continue
            if rows is not None and len(data) != rows:
                errors.append(
                    {
                        "type": "value_error",
                        "loc": [*where, "shape"],
                        "input": None,
                        "msg": f"has {len(data)} rows but other inputs have {rows}",
                    }
                )
                continue
            rows = len(data)
            columns[name] = data
        for name in self.features:
            if name not in columns and not any(e["loc"][len(loc)] == name for e in errors if len(e["loc"]) > len(loc)):
                errors.append({"type": "missing", "loc": [*loc, name], "msg": "Field required", "input": None})
        if errors:
            return [], errors
        records = [{k: v[r] for k, v in columns.items()} for r in range(rows or 0)]
        clean, errs = self.validate(records, loc=(*loc, "rows"))
        for e in errs:
            # Name the column first (loc: inputs/<column>/<row>) so the field is the visible part.
            if len(e["loc"]) >= len(loc) + 3:
                row, col = e["loc"][len(loc) + 1], e["loc"][len(loc) + 2]
                e["loc"] = [*loc, col, row, *e["loc"][len(loc) + 3 :]]
        return clean, errs


def _jsonable(e: dict[str, Any]) -> dict[str, Any]:
    out = dict(e)
    value = out.get("input")
    if not isinstance(value, (str, int, float, bool, type(None), list, dict)):
        out["input"] = repr(value)
    return out
