"""Data contract: which columns exist, their kind, range and categories.

A contract is declared in the config (`data.contract`) or inferred from the first
run's data and stored in the registry, so later runs and the model server check
new data against the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from civicml.config import ColumnSpec, DataConfig
from civicml.data.errors import DataError

MAX_CATEGORIES = 200
NUMERIC_SHARE = 0.9
# Inferred numeric ranges: the observed [min, max] widened by this share of its span on each side,
# so the next batch may vary a little without a warning; a column that was never negative keeps 0 as
# its floor (an age or an amount of -5 is outside the contract whatever the margin).
RANGE_MARGIN = 0.1


@dataclass
class ContractReport:
    """Outcome of a contract check: warnings do not stop a run, errors do."""

    warnings: list[str] = field(default_factory=list)


def _examples(values: pd.Series, n: int = 3) -> str:
    return ", ".join(repr(v) for v in values.drop_duplicates().head(n).tolist())


def infer_contract(df: pd.DataFrame, cfg: DataConfig) -> list[ColumnSpec]:
    """Infer a contract from a trusted first batch of data (PII columns excluded)."""
    specs: list[ColumnSpec] = []
    declared_cat = set(cfg.categorical_features or [])
    declared_num = set(cfg.numeric_features or [])
    for col in df.columns:
        if col in cfg.pii_columns:
            continue
        s = df[col]
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if not numeric and s.notna().any():
            # A column that is almost all numbers is numeric with a few typos ("n/a", "12,5"),
            # not a category per distinct value: call it numeric so the typos are reported.
            numeric = _numeric_share(s) >= NUMERIC_SHARE
        if col in declared_cat:
            numeric = False
        elif col in declared_num:
            numeric = True
        nullable = bool(s.isna().any())
        if numeric:
            specs.append(ColumnSpec(name=col, kind="numeric", nullable=nullable, **_inferred_range(s)))
        else:
            cats = sorted(str(v) for v in s.dropna().unique())
            specs.append(ColumnSpec(name=col, kind="categorical", nullable=nullable, categories=cats[:MAX_CATEGORIES]))
    return specs


def _numeric_share(s: pd.Series) -> float:
    """Share of the non-missing rows whose value parses as a number.

    Parsed once per distinct value and weighted by its count: a text column of a million rows
    and a dozen values costs a dozen parses, not a million.
    """
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    parses = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce").notna().to_numpy()
    return int(counts[parses].sum()) / int(counts.sum())


def _inferred_range(s: pd.Series) -> dict[str, float]:
    values = pd.to_numeric(s, errors="coerce").dropna()
    values = values[np.isfinite(values)]
    if values.empty:
        return {}
    lo, hi = float(values.min()), float(values.max())
    pad = RANGE_MARGIN * (hi - lo)
    floor = lo - pad
    if lo >= 0:
        floor = max(0.0, floor)
    return {"min": floor, "max": hi + pad}


def _column(df: pd.DataFrame, name: str, missing: str) -> pd.Series:
    """`df[name]`; `DataError(missing)` when `df` has no such column."""
    if name not in df.columns:
        raise DataError(missing)
    return df[name]


def _missing_rows(s: pd.Series) -> tuple[int, list[Any]]:
    """How many values of `s` are missing, and the index of the first five of them."""
    missing = s.isna()
    return int(missing.sum()), s.index[missing].tolist()[:5]


def check_target(df: pd.DataFrame, cfg: DataConfig, task: str) -> None:
    """Check the target column exists, has no missing values, and fits the task."""
    target = cfg.target
    hint = f"the data has columns {list(df.columns)[:12]}; set data.target to one of them"
    y = _column(df, target, f"target column {target!r} (data.target) is missing; {hint}")
    if y.isna().any():
        n, rows = _missing_rows(y)
        raise DataError(f"target column {target!r} has {n} missing values (e.g. rows {rows})")
    if task == "binary_classification":
        classes = sorted(y.unique().tolist(), key=str)
        if len(classes) < 2:
            raise DataError(
                f"target column {target!r} has one class only ({classes[0]!r} in all {len(y)} rows); "
                "a classifier needs examples of both outcomes"
            )
        if len(classes) > 2:
            raise DataError(
                f"target column {target!r} has {len(classes)} classes (e.g. {classes[:5]}); "
                "binary_classification needs exactly two (0/1 or two labels)"
            )
    elif not pd.api.types.is_numeric_dtype(y):
        bad = y[pd.to_numeric(y, errors="coerce").isna()]
        raise DataError(f"target column {target!r} must be numeric for regression; found e.g. {_examples(bad)}")


def enforce_contract(
    df: pd.DataFrame, contract: list[ColumnSpec], out_of_contract: str = "warn"
) -> tuple[pd.DataFrame, ContractReport]:
    """Check `df` against the contract and return it with canonical dtypes.

    Numeric columns become float64, categorical columns pandas `category` with text categories,
    so every later step (and XGBoost, which rejects pandas' `str` dtype) sees the same types. Values outside a
    column's range or categories are warnings, or errors with `out_of_contract="error"`. Every
    failing column is reported at once.

    Raises:
        DataError: naming each failing column, the rule and example bad values.
    """
    report = ContractReport()
    # Shallow: every checked column is replaced, never written in place (copy-on-write), so a deep
    # copy would only double the table at its largest.
    out = df.copy(deep=False)
    errors: list[str] = []
    for spec in contract:
        try:
            _enforce_column(out, spec, report, out_of_contract)
        except DataError as err:
            errors.append(str(err))
    if len(errors) == 1:
        raise DataError(errors[0])
    if errors:
        raise DataError(
            f"the data breaks the contract in {len(errors)} places:\n" + "\n".join(f"  - {e}" for e in errors)
        )
    return out, report


def _out_of_contract(message: str, report: ContractReport, mode: str) -> None:
    if mode == "error":
        raise DataError(message + " (data.out_of_contract: error)")
    report.warnings.append(message)


def _enforce_column(out: pd.DataFrame, spec: ColumnSpec, report: ContractReport, mode: str) -> None:
    col = spec.name
    where = "add it to the data or remove it from data.contract"
    s = _column(out, col, f"column {col!r} required by the data contract is missing (rule: presence); {where}")
    if not spec.nullable and s.isna().any():
        n, rows = _missing_rows(s)
        raise DataError(
            f"column {col!r} has {n} missing values (rule: not nullable), e.g. rows {rows}; "
            f"fill them or declare nullable: true in data.contract"
        )
    if spec.kind == "numeric":
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            conv = pd.to_numeric(s, errors="coerce")
            bad = s[conv.isna() & s.notna()]
            if len(bad):
                raise DataError(
                    f"column {col!r} must be numeric (rule: type) but has {len(bad)} text values, "
                    f"e.g. {_examples(bad)} in rows {bad.index[:5].tolist()} (0-based data rows); "
                    "fix those values or declare the column categorical in data.contract"
                )
            s = conv
        s = s.astype("float64")
        if np.isinf(s).any():
            raise DataError(f"column {col!r} has infinite values (rule: finite)")
        out[col] = s
        for side, bound in (("below min", spec.min), ("above max", spec.max)):
            if bound is None:
                continue
            bad = s[s < bound] if side == "below min" else s[s > bound]
            if len(bad):
                _out_of_contract(
                    f"column {col!r} has {len(bad)} values {side} {bound:g} (rule: range), e.g. {_examples(bad)} "
                    f"in rows {bad.index[:5].tolist()}",
                    report,
                    mode,
                )
    else:
        # Codes plus one string per distinct value (issue 18): a column of a million rows and
        # five values costs a megabyte, not a Python string per row, in every later step too.
        # Text is categorised as it is; anything else (numbers as labels) through its text first.
        s = (
            s.astype("category")
            if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object
            else (s.astype("string").astype("category"))
        )
        out[col] = s
        if spec.categories is not None:
            unknown = s[s.notna() & ~s.isin(spec.categories)]
            if len(unknown):
                _out_of_contract(
                    f"column {col!r} has {len(unknown)} values outside the contract's categories (rule: "
                    f"categories), e.g. {_examples(unknown)}; the model treats them as unknown",
                    report,
                    mode,
                )


def feature_lists(contract: list[ColumnSpec], cfg: DataConfig) -> tuple[list[str], list[str]]:
    """Decide the model's numeric and categorical features.

    Sensitive attributes are excluded unless `data.allow_sensitive_as_features`; PII and
    the target never are features.
    """
    excluded = {cfg.target, *cfg.pii_columns}
    if not cfg.allow_sensitive_as_features:
        excluded |= set(cfg.sensitive_attributes)
    kinds = {c.name: c.kind for c in contract}
    if cfg.numeric_features is not None or cfg.categorical_features is not None:
        numeric = list(cfg.numeric_features or [])
        categorical = list(cfg.categorical_features or [])
        for col in numeric + categorical:
            if col not in kinds:
                raise DataError(f"feature {col!r} from the config is not a column of the data")
        leaked = (set(numeric) | set(categorical)) & set(cfg.sensitive_attributes)
        if leaked and not cfg.allow_sensitive_as_features:
            raise DataError(
                f"sensitive attribute(s) {sorted(leaked)} listed as features; they are used to measure fairness "
                "only, unless data.allow_sensitive_as_features is true"
            )
        return numeric, categorical
    numeric = [c.name for c in contract if c.kind == "numeric" and c.name not in excluded]
    categorical = [c.name for c in contract if c.kind == "categorical" and c.name not in excluded]
    if not numeric and not categorical:
        raise DataError("no feature columns left after removing the target, PII and sensitive attributes")
    return numeric, categorical
