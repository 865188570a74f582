"""Deterministic, stratified train/valid/test split.

The rows are those scikit-learn's `train_test_split` picks for the same seed (the split every
earlier version was made with, so `civicml reproduce` retrains on the same rows), computed here
with numpy alone: validate-data is a process of its own, and importing scikit-learn for one split
cost it ~1 s and ~60 MB. The algorithm is scikit-learn's, step for step, on the same
`np.random.RandomState` stream (upstream: scikit-learn sklearn/model_selection/_split.py
`ShuffleSplit._iter_indices`, `StratifiedShuffleSplit._iter_indices`, `_validate_shuffle_split`,
sklearn/utils/extmath.py `_approximate_mode` @ 1.9.1); `tests/unit/test_split.py` checks the rows
against scikit-learn's for many sizes, fractions and seeds.
"""

from __future__ import annotations

from math import ceil

import numpy as np
import pandas as pd

from civicml.config import SplitConfig
from civicml.data.errors import DataError


def _sizes(n: int, test_fraction: float) -> tuple[int, int]:
    """(train rows, test rows) as `_validate_shuffle_split` computes them for a float test size."""
    n_test = ceil(test_fraction * n)
    n_train = n - n_test
    if n_test <= 0 or n_train <= 0:
        raise ValueError(f"a test fraction of {test_fraction} leaves {n_train} training and {n_test} test rows")
    return n_train, n_test


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Rows to draw from each class: the floored proportional share, remainders broken at random."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def _stratified(y: np.ndarray, n_train: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        raise ValueError(f"the class(es) {classes[class_counts < 2].tolist()} have fewer than 2 rows")
    if n_train < len(classes) or n_test < len(classes):
        raise ValueError(f"{n_train} training / {n_test} test rows cannot hold all {len(classes)} classes")
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for i in range(len(classes)):
        rows = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.append(rows[: n_i[i]])
        test.append(rows[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _shuffled(n: int, n_train: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    permutation = np.random.RandomState(seed).permutation(n)
    return permutation[n_test : n_test + n_train], permutation[:n_test]


def split_indices(
    y: pd.Series | np.ndarray, test_fraction: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of (rest, test), as `train_test_split(..., test_size, random_state=seed)` picks them.

    Raises:
        ValueError: the fraction leaves an empty side, or a class is too small to stratify.
    """
    n_train, n_test = _sizes(len(y), test_fraction)
    if stratify:
        return _stratified(np.asarray(y), n_train, n_test, seed)
    return _shuffled(len(y), n_train, n_test, seed)


def split_frame(df: pd.DataFrame, target: str, cfg: SplitConfig, stratify: bool) -> dict[str, pd.DataFrame]:
    """Split into train/valid/test; the same input and seed always give the same rows.

    Args:
        df: The validated table.
        target: Target column, used for stratification.
        cfg: Fractions and seed.
        stratify: Stratify by the target (classification).
    """
    if stratify and df[target].value_counts().min() < 3:
        raise DataError(
            f"target column {target!r} has a class with fewer than 3 rows "
            f"({df[target].value_counts().to_dict()}); need more examples to split into train/valid/test"
        )
    try:
        rest_idx, test_idx = split_indices(df[target], cfg.test_fraction, cfg.seed, stratify)
        rest = df.iloc[rest_idx]
        valid_share = cfg.valid_fraction / (1.0 - cfg.test_fraction)
        train_idx, valid_idx = split_indices(rest[target], valid_share, cfg.seed + 1, stratify)
    except ValueError as err:
        raise DataError(f"cannot split {len(df)} rows into train/valid/test: {err}") from None
    return {
        "train": rest.iloc[train_idx].reset_index(drop=True),
        "valid": rest.iloc[valid_idx].reset_index(drop=True),
        "test": df.iloc[test_idx].reset_index(drop=True),
    }
