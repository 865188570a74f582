"""Deterministic, stratified train/valid/test split."""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import train_test_split

from civicml.config import SplitConfig
from civicml.data.errors import DataError


def split_frame(df: pd.DataFrame, target: str, cfg: SplitConfig, stratify: bool) -> dict[str, pd.DataFrame]:
    """Split into train/valid/test; the same input and seed always give the same rows.

    Args:
        df: The validated table.
        target: Target column, used for stratification.
        cfg: Fractions and seed.
        stratify: Stratify by the target (classification).
    """
    strat = df[target] if stratify else None
    if stratify and df[target].value_counts().min() < 3:
        raise DataError(
            f"target column {target!r} has a class with fewer than 3 rows "
            f"({df[target].value_counts().to_dict()}); need more examples to split into train/valid/test"
        )
    try:
        rest, test = train_test_split(df, test_size=cfg.test_fraction, random_state=cfg.seed, stratify=strat)
        valid_share = cfg.valid_fraction / (1.0 - cfg.test_fraction)
        strat_rest = rest[target] if stratify else None
        train, valid = train_test_split(rest, test_size=valid_share, random_state=cfg.seed + 1, stratify=strat_rest)
    except ValueError as err:
        raise DataError(f"cannot split {len(df)} rows into train/valid/test: {err}") from None
    return {
        "train": train.reset_index(drop=True),
        "valid": valid.reset_index(drop=True),
        "test": test.reset_index(drop=True),
    }
