"""The split picks scikit-learn's rows for the same seed, without importing scikit-learn (issue 18 item 3)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from civicml.config import SplitConfig
from civicml.data.errors import DataError
from civicml.data.split import split_frame, split_indices


def _old_split_frame(df: pd.DataFrame, target: str, cfg: SplitConfig, stratify: bool) -> dict[str, pd.DataFrame]:
    """The split as every earlier version made it (scikit-learn's train_test_split twice)."""
    rest, test = train_test_split(
        df, test_size=cfg.test_fraction, random_state=cfg.seed, stratify=df[target] if stratify else None
    )
    train, valid = train_test_split(
        rest,
        test_size=cfg.valid_fraction / (1.0 - cfg.test_fraction),
        random_state=cfg.seed + 1,
        stratify=rest[target] if stratify else None,
    )
    return {k: v.reset_index(drop=True) for k, v in (("train", train), ("valid", valid), ("test", test))}


@pytest.mark.parametrize("n", [10, 57, 1000, 4099])
@pytest.mark.parametrize("seed", [0, 7, 123])
@pytest.mark.parametrize("fraction", [0.2, 0.25, 0.33])
def test_indices_equal_scikit_learn(n, seed, fraction):
    rng = np.random.default_rng(n + seed)
    for y in (
        rng.integers(0, 2, n),
        np.where(rng.random(n) < 0.1, "yes", "no").astype(object),  # imbalanced text labels
        rng.choice([3, 5, 9], size=n),  # three classes: remainders tie and are broken at random
    ):
        if np.unique(y, return_counts=True)[1].min() < 2:
            continue
        for stratify in (True, False):
            try:
                ref_train, ref_test = train_test_split(
                    np.arange(n), test_size=fraction, random_state=seed, stratify=y if stratify else None
                )
            except ValueError:  # e.g. fewer test rows than classes: refused on both sides
                with pytest.raises(ValueError):
                    split_indices(y, fraction, seed, stratify)
                continue
            train, test = split_indices(y, fraction, seed, stratify)
            assert train.tolist() == ref_train.tolist()
            assert test.tolist() == ref_test.tolist()


@pytest.mark.parametrize("stratify", [True, False])
def test_frames_equal_the_scikit_learn_split(stratify):
    rng = np.random.default_rng(4)
    n = 2503
    df = pd.DataFrame(
        {"x": rng.normal(size=n), "c": rng.choice(["a", "b"], size=n), "y": np.where(rng.random(n) < 0.3, "p", "q")}
    )
    for cfg in (SplitConfig(), SplitConfig(test_fraction=0.3, valid_fraction=0.1, seed=11)):
        got, ref = split_frame(df, "y", cfg, stratify), _old_split_frame(df, "y", cfg, stratify)
        for name in ("train", "valid", "test"):
            pd.testing.assert_frame_equal(got[name], ref[name])


def test_too_small_a_class_is_a_clear_error():
    df = pd.DataFrame({"x": range(20), "y": [0] * 18 + [1] * 2})
    with pytest.raises(DataError, match="fewer than 3 rows"):
        split_frame(df, "y", SplitConfig(), stratify=True)
    with pytest.raises(DataError, match="cannot split 2 rows"):
        split_frame(pd.DataFrame({"x": [1, 2], "y": [1.0, 2.0]}), "y", SplitConfig(), stratify=False)


def test_split_module_does_not_import_scikit_learn():
    code = "import sys, civicml.data.split; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
