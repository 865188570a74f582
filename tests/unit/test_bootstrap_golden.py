"""Bootstrap intervals are bit-for-bit those of the code before the shared bootstrap (issue 18 item 1).

`tests/unit/data/bootstrap_golden.json` was written by `python tests/unit/test_bootstrap_golden.py
--write` against the evaluation code as it was before one bootstrap served metrics, fairness, the
baseline margins and the champion comparison (commit e4d0447: four loops, each drawing its own
weights, chunk capped at 2M cells). The cases cover ties in the scores, constant scores, a test set
large enough for the old memory cap to shrink the chunks (30k rows: 66 resamples a chunk, a ragged
last chunk), a suppressed group (its rows leave the fairness resample, so that resample has fewer
rows), missing group labels, a single-class resample-prone set and regression. Equality is exact:
the same seed must give the same intervals, not close ones.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

GOLDEN = Path(__file__).parent / "data" / "bootstrap_golden.json"


def _classification(n: int, seed: int, tie_decimals: int | None = None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    if tie_decimals is not None:
        p = np.round(p, tie_decimals)  # many tied scores, as float32 tree outputs have
    return y, p


def _sensitive(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(["North", "South", "East", "Tiny"], size=n, p=[0.45, 0.3, 0.245, 0.005]).astype(object)
    region[rng.random(n) < 0.02] = None  # missing labels form their own group
    sex = rng.choice(["F", "M"], size=n)
    band = rng.choice([1, 2, 3], size=n)  # numbers as group labels
    return pd.DataFrame({"region": region, "sex": sex, "band": band})


def compute() -> dict:
    """Every interval-producing public function on fixed inputs."""
    from civicml.evaluation.baseline import no_skill_baseline
    from civicml.evaluation.compare import paired_comparison
    from civicml.evaluation.fairness import fairness_report
    from civicml.evaluation.metrics import bootstrap_intervals, evaluate_predictions

    out: dict = {}
    y, p = _classification(2000, 1)
    out["cls_2k"] = bootstrap_intervals("binary_classification", y, p, n_resamples=1000, seed=3)
    y, p = _classification(2000, 2, tie_decimals=2)
    out["cls_2k_ties_t04"] = bootstrap_intervals("binary_classification", y, p, n_resamples=500, seed=4, threshold=0.4)
    y, p = _classification(30_000, 5, tie_decimals=3)
    out["cls_30k_ties"] = bootstrap_intervals("binary_classification", y, p, n_resamples=1000, seed=0)
    y_small = np.array([0, 0, 0, 0, 1, 0, 0, 0])
    p_small = np.linspace(0.1, 0.8, 8)
    out["cls_rare_positive"] = bootstrap_intervals("binary_classification", y_small, p_small, n_resamples=200, seed=1)
    rng = np.random.default_rng(6)
    yr = rng.normal(size=3000)
    out["reg_3k"] = bootstrap_intervals(
        "regression", yr, yr + rng.normal(scale=0.5, size=3000), n_resamples=700, seed=2
    )
    out["eval_cls"] = evaluate_predictions("binary_classification", y, p, 0.5, n_resamples=1000, seed=7)[
        "confidence_intervals"
    ]

    y, p = _classification(30_000, 8)
    sens = _sensitive(30_000, 9)
    out["fair_30k"] = {
        a: v["confidence_intervals"]
        for a, v in fairness_report(y, (p >= 0.5).astype(int), sens, min_group_count=300, n_resamples=1000).items()
    }
    out["fair_2k_seed5"] = {
        a: v["confidence_intervals"]
        for a, v in fairness_report(
            y[:2000], (p[:2000] >= 0.45).astype(int), sens.iloc[:2000], min_group_count=30, n_resamples=400, seed=5
        ).items()
    }

    y, chal = _classification(30_000, 10, tie_decimals=3)
    champ = np.clip(chal + np.random.default_rng(11).normal(scale=0.1, size=len(chal)), 0, 1)
    out["compare_cls_30k"] = paired_comparison("binary_classification", y, chal, champ, 0.01, n_resamples=1000)
    out["compare_reg"] = paired_comparison(
        "regression", yr, yr + 0.3 * rng.normal(size=3000), yr + 0.5 * rng.normal(size=3000), 0.0, seed=4
    )

    y_train = np.random.default_rng(12).integers(0, 2, 5000)
    out["baseline_cls_30k"] = no_skill_baseline(
        "binary_classification",
        y_train,
        y,
        chal,
        0.45,
        metrics=("balanced_accuracy", "accuracy", "roc_auc", "pr_auc", "brier", "log_loss", "f1"),
        n_resamples=1000,
        seed=3,
    )
    out["baseline_reg"] = no_skill_baseline(
        "regression", rng.normal(size=500), yr, yr + 0.5, metrics=("rmse", "mae", "r2", "mse"), n_resamples=600, seed=8
    )
    return out


def _nan_safe(obj):
    """JSON cannot hold NaN; write it as the string 'nan' (only point values can be NaN)."""
    if isinstance(obj, float) and math.isnan(obj):
        return "nan"
    if isinstance(obj, dict):
        return {k: _nan_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_safe(v) for v in obj]
    return obj


@pytest.mark.timeout(300)
def test_intervals_equal_those_of_the_code_before_the_shared_bootstrap():
    golden = json.loads(GOLDEN.read_text())
    now = json.loads(json.dumps(_nan_safe(compute())))
    assert set(now) == set(golden)
    for case in golden:
        assert now[case] == golden[case], case


if __name__ == "__main__" and "--write" in sys.argv:
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(_nan_safe(compute()), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
