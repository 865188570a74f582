"""Checks of a table's shape and values that stop validate-data before anything is learned or stored.

Each catches data that used to pass validation and then failed later (or worse, silently trained):
columns pandas renamed because their names repeat, a saved index that became a feature, names
XGBoost refuses, identifier columns learned as categories, and numbers no model computes with.
Every message names the column, the rule, an example and the fix.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from civicml.data.errors import DataError

MAX_COLUMNS = 10_000
FLOAT32_MAX = float(np.finfo(np.float32).max)
# XGBoost refuses feature names containing these (xgboost/core.py: "feature_names must be string, and may
# not contain [, ] or <").
XGB_FORBIDDEN = re.compile(r"[\[\]<]")
INDEX_NAME = re.compile(r"^Unnamed: \d+$")
# A categorical column with this many distinct values, nearly one per row, is an identifier.
ID_MIN_DISTINCT = 1000
ID_DISTINCT_SHARE = 0.9


def check_header(names: list[str], where: str) -> None:
    """Column names as written in the file (before pandas renames duplicates to `name.1`).

    Raises:
        DataError: too many columns, a repeated name, or a name XGBoost refuses.
    """
    if len(names) > MAX_COLUMNS:
        raise DataError(
            f"{where} has {len(names)} columns (rule: at most {MAX_COLUMNS}); e.g. {names[:3]}…; a model table has "
            "one column per feature: check the delimiter or select the columns you need"
        )
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise DataError(
                f"column {name!r} appears twice in {where} (rule: unique names), at positions {seen[name] + 1} "
                f"and {i + 1}; rename one (e.g. {name}_2) — otherwise pandas renames it to {name}.1 silently"
            )
        seen[name] = i
        bad = XGB_FORBIDDEN.search(str(name))
        if bad:
            fixed = XGB_FORBIDDEN.sub("_", str(name))
            raise DataError(
                f"column {name!r} in {where} contains {bad.group()!r} (rule: names without '[', ']' or '<', which "
                f"XGBoost refuses); rename it, e.g. to {fixed!r}"
            )


def check_columns(df: pd.DataFrame, target: str, features: set[str]) -> None:
    """Refuse a written-out index (`Unnamed: 0`) that would become a feature.

    Raises:
        DataError: naming the column and the fix.
    """
    for col in df.columns:
        if INDEX_NAME.match(str(col)) and col != target and (not features or col in features):
            sample = df[col].head(3).tolist()
            raise DataError(
                f"column {col!r} has no name in the header (rule: named columns), values e.g. {sample}: it is "
                "usually an index written by pandas' to_csv; write the file with index=False or drop the column"
            )


def check_values(df: pd.DataFrame, numeric: list[str], categorical: list[str]) -> None:
    """Refuse numbers beyond float32 and identifier-like categorical columns.

    Raises:
        DataError: naming the column, the rule, an example and the fix.
    """
    for col in numeric:
        s = pd.to_numeric(df[col], errors="coerce").astype("float64")
        big = s[np.isfinite(s) & (s.abs() > FLOAT32_MAX)]
        if len(big):
            raise DataError(
                f"column {col!r} has {len(big)} values beyond the float32 range (rule: |x| <= {FLOAT32_MAX:.3g}, "
                f"what the models compute in), e.g. {big.head(3).tolist()} in rows {big.index[:3].tolist()}; "
                "rescale the column (e.g. to thousands) or fix the values"
            )
    rows = len(df)
    for col in categorical:
        distinct = int(df[col].nunique(dropna=True))
        if distinct >= ID_MIN_DISTINCT and distinct >= ID_DISTINCT_SHARE * rows:
            raise DataError(
                f"column {col!r} looks like an identifier (rule: a category repeats; it has {distinct} distinct "
                f"values in {rows} rows), e.g. {df[col].dropna().head(3).tolist()}; list it in data.pii_columns "
                "to drop it, or choose the features with data.categorical_features"
            )
