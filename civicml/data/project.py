"""Draft a new project's config from a data file (`civicml init`).

The draft names the target, the sensitive attributes and the PII columns the user gave, infers the
task from the target, and infers the features and the data contract (kinds, ranges, categories) from
the data, so the user can read what civicml will check before the first run.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from civicml.config import DataConfig, RunConfig
from civicml.data.contract import feature_lists, infer_contract
from civicml.data.errors import DataError


def project_name(text: str) -> str:
    """A config `name:` from a file name or a title: lowercase words joined by dashes."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return name or "project"


def draft_config(
    df: pd.DataFrame,
    source: str,
    target: str,
    sensitive: list[str],
    pii: list[str],
    name: str,
) -> tuple[dict[str, Any], list[Any]]:
    """A config (as a plain mapping, ready for YAML) for a new project on `df`, and the inferred contract.

    The contract is shown, not written into the config: the first run infers and stores the same one,
    and out-of-contract values then follow `data.out_of_contract` (a declared contract always stops).

    Raises:
        DataError: a named column is not in the data, or the target does not fit a task.
    """
    unknown = [c for c in [target, *sensitive, *pii] if c not in df.columns]
    if unknown:
        raise DataError(f"column(s) {unknown} are not in {source}; its columns are {list(df.columns)}")
    classes = df[target].dropna().unique()
    task = "binary_classification" if len(classes) == 2 else "regression"
    if task == "regression" and not pd.api.types.is_numeric_dtype(df[target]):
        raise DataError(
            f"target {target!r} has {len(classes)} distinct values and is not numeric: civicml handles a binary "
            "target (two values) or a numeric one (regression)"
        )
    data = DataConfig(source=source, target=target, sensitive_attributes=sensitive, pii_columns=pii)
    contract = infer_contract(df.drop(columns=pii), data)
    numeric, categorical = feature_lists(contract, data)
    raw: dict[str, Any] = {
        "name": name,
        "task": task,
        "data": {
            "source": source,
            "target": target,
            "numeric_features": numeric,
            "categorical_features": categorical,
            "sensitive_attributes": sensitive,
            "pii_columns": pii,
        },
        "model": {"family": "xgboost", "params": {}},
        "tuning": {"max_trials": 8},
        "storage": {"uri": ".civicml"},
        "card": {"title": name, "owner": None, "intended_use": None, "limitations": None},
    }
    RunConfig.model_validate({**raw, "card": {"title": name}})  # the draft must load as it is written
    return raw, contract
