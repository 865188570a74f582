"""One bootstrap: the evaluation draws each chunk of weights once and every statistic shares it (issue 18)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from civicml.config import RunConfig
from civicml.data.demo import CATEGORICAL, NUMERIC, TARGET, generate_benefits
from civicml.evaluation import bootstrap
from civicml.evaluation.baseline import MARGIN_METRICS, no_skill_baseline
from civicml.evaluation.bootstrap import Bootstrap, chunk_size, percentile_intervals
from civicml.evaluation.compare import paired_comparison
from civicml.evaluation.evaluate import evaluate_model
from civicml.evaluation.fairness import fairness_report, group_codes, group_labels
from civicml.evaluation.metrics import bootstrap_intervals
from civicml.modeling.estimators import fit_model
from civicml.modeling.preprocessing import FeatureSpec


@pytest.fixture
def count_draws(monkeypatch):
    """Record the row count of every weight matrix drawn."""
    drawn: list[tuple[int, int]] = []
    real = bootstrap.resample_weights

    def counting(n, k, rng):
        drawn.append((n, k))
        return real(n, k, rng)

    monkeypatch.setattr(bootstrap, "resample_weights", counting)
    return drawn


def test_evaluate_draws_each_chunk_once_and_matches_the_separate_functions(count_draws):
    cfg = RunConfig.model_validate(
        {"data": {"sensitive_attributes": ["sex", "region"]}, "policy": {"min_group_count": 150}}
    )
    df = generate_benefits(rows=3000, bias=1.0, seed=4)
    train, test = df.iloc[:2000], df.iloc[2000:].reset_index(drop=True)
    spec = FeatureSpec.fit(train, TARGET, "binary_classification", NUMERIC, CATEGORICAL)
    model = fit_model("xgboost", spec, {"n_estimators": 20, "max_depth": 3}, train, 1, 1)
    ev = evaluate_model(cfg, model, test, registry=None, n_resamples=300, train=train)

    fair = ev["fairness"]
    kept = {len(test)} | {
        sum(fair[a]["groups"][g]["count"] for g in fair[a]["reportable_groups"]) for a in ("sex", "region")
    }
    assert len(kept) == 2, "the test needs one attribute with a suppressed group (a second row count)"
    # One draw per chunk per row count: not one per metric, per attribute or per baseline.
    expected = sorted((n, k) for n in kept for k in _chunks(n, 300))
    assert sorted(count_draws) == expected

    y = spec.encode_target(test[TARGET])
    score = model.score(test)
    threshold = model.threshold
    seed = cfg.split.seed
    skill = cfg.policy.skill.resolved(cfg.task)[0]
    assert ev["confidence_intervals"] == bootstrap_intervals(
        "binary_classification", y, score, n_resamples=300, seed=seed, threshold=threshold
    )
    alone = no_skill_baseline(
        "binary_classification",
        spec.encode_target(train[TARGET]),
        y,
        score,
        threshold,
        metrics=tuple(dict.fromkeys((*MARGIN_METRICS["binary_classification"], skill))),
        n_resamples=300,
        seed=seed,
    )
    assert ev["baseline"]["margins"] == alone["margins"]
    separate = fairness_report(
        y, (score >= threshold).astype(int), test[["sex", "region"]], min_group_count=150, n_resamples=300, seed=seed
    )
    for attr in ("sex", "region"):
        assert fair[attr]["confidence_intervals"] == separate[attr]["confidence_intervals"]
        assert fair[attr]["confidence_intervals"], attr


def _chunks(n: int, n_resamples: int) -> list[int]:
    c = chunk_size(n, n_resamples)
    return [min(c, n_resamples - s) for s in range(0, n_resamples, c)]


def test_shared_paired_comparison_equals_its_own_bootstrap(count_draws):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 4000)
    chal = np.clip(0.4 * y + 0.6 * rng.random(4000), 0, 1)
    champ = np.clip(chal + rng.normal(scale=0.1, size=4000), 0, 1)
    alone = paired_comparison("binary_classification", y, chal, champ, 0.01, n_resamples=250, seed=2)
    count_draws.clear()
    boot = Bootstrap(250, seed=2)
    cis = bootstrap_intervals("binary_classification", y, chal, boot=boot)
    shared = paired_comparison("binary_classification", y, chal, champ, 0.01, boot=boot)
    assert shared["ci_low"] is None and cis == {}  # nothing until the shared bootstrap runs
    boot.run()
    assert sum(k for _, k in count_draws) == 250  # both statistics on one set of 250 resamples
    assert shared == alone
    assert cis == bootstrap_intervals("binary_classification", y, chal, n_resamples=250, seed=2)


def test_percentile_intervals_drop_undefined_draws():
    draws = {"a": np.r_[np.arange(10.0), [np.nan] * 2], "b": np.r_[[1.0] * 5, [np.nan] * 7]}
    out = percentile_intervals(draws, 12, 0.9)
    assert set(out) == {"a"}  # b is undefined in more than half the resamples
    assert out["a"]["n_resamples"] == 10
    assert out["a"]["low"] == pytest.approx(np.quantile(np.arange(10.0), 0.05))


def test_chunks_follow_the_memory_budget():
    assert chunk_size(200_000, 1000) == 10  # the default budget keeps the chunks of before (2M cells)
    assert chunk_size(1000, 1000) == bootstrap.MAX_CHUNK
    assert chunk_size(200_000, 1000, memory_budget=200_000 * bootstrap.BYTES_PER_CELL * 3) == 3
    assert chunk_size(10**9, 1000) == 1


def test_groups_are_factorized_once_with_the_labels_of_before():
    col = pd.Series([1, "1", None, "b", 2.5, "b", float("nan")], dtype=object)
    codes, labels = group_codes(col)
    # As when every row became text: 1 and "1" print the same and are one group; missing is its own.
    assert list(labels[codes]) == ["1", "1", "<missing>", "b", "2.5", "b", "<missing>"]
    assert len(labels) == 4
    cat = pd.Series(pd.Categorical(["x", None, "y", "x"]))
    assert list(group_labels(cat)) == ["x", "<missing>", "y", "x"]
    assert len(group_labels(pd.Series([], dtype=object))) == 0
