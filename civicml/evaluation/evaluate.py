"""Evaluate a trained model on the test split: metrics with CIs, fairness, explanations, champion comparison."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from civicml.catalog import DEFAULT_THRESHOLD
from civicml.config import RunConfig
from civicml.evaluation.baseline import MARGIN_METRICS, no_skill_baseline
from civicml.evaluation.bootstrap import Bootstrap
from civicml.evaluation.compare import compare_with_champion
from civicml.evaluation.explain import global_importance
from civicml.evaluation.fairness import fairness_report, regression_fairness_report
from civicml.evaluation.metrics import evaluate_predictions
from civicml.modeling.estimators import TrainedModel

THRESHOLD = DEFAULT_THRESHOLD
N_RESAMPLES = 1000


def evaluate_model(
    cfg: RunConfig,
    model: TrainedModel,
    test: pd.DataFrame,
    registry=None,
    n_resamples: int = N_RESAMPLES,
    train: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Build the evaluation document for `model` on `test`.

    The document holds everything the gate and the model card need: `metrics`,
    `confidence_intervals` (95 % bootstrap, seeded by `split.seed`), curves
    (`roc`, `pr`, `calibration`, `confusion_matrix`) or `residuals`, `fairness`
    per sensitive attribute, `feature_importance`, and `champion_comparison`
    when a champion exists.

    Args:
        cfg: Run config (task, sensitive attributes, policy).
        model: The challenger.
        test: Test rows with target and sensitive attributes.
        registry: When given and a champion exists, the champion is scored on the same rows.
        n_resamples: Bootstrap resamples for CIs and the champion comparison.
        train: Training rows; the no-skill baseline (`baseline`) is fitted on their labels. Without them
            the baseline is fitted on the test labels (said in `baseline.fitted_on`).
    """
    spec = model.spec
    seed = cfg.split.seed
    threshold = model.threshold if cfg.task == "binary_classification" else None
    cut = threshold or THRESHOLD  # what the metrics cut at (regression metrics ignore it)
    y = spec.encode_target(test[spec.target])
    score = model.score(test)
    doc: dict[str, Any] = {
        "task": cfg.task,
        "family": model.family,
        "n_test": len(test),
        "threshold": threshold,
        "features": spec.features,
    }
    # One bootstrap for every interval below: the weights are drawn once per chunk and shared by the
    # metrics, the baseline margins, every attribute's disparities and the champion comparison.
    boot = Bootstrap(n_resamples, seed=seed) if n_resamples > 0 else None
    doc.update(evaluate_predictions(cfg.task, y, score, cut, n_resamples=n_resamples, seed=seed, boot=boot))
    doc["baseline"] = _baseline(cfg, model, train, y, score, cut, n_resamples, boot)
    fairness = _fairness(cfg, test, y, score, threshold, n_resamples, boot)
    if fairness is not None:
        doc["fairness"] = fairness
    doc["feature_importance"] = global_importance(model, test, seed=seed)
    if registry is not None:
        margin = cfg.policy.non_inferiority_margin
        comparison = compare_with_champion(
            model, test, registry, margin, n_resamples=n_resamples, seed=seed, threshold=cut, boot=boot
        )
        if comparison is not None:
            doc["champion_comparison"] = comparison
    if boot is not None:
        boot.run()  # fills the intervals of every document above
    return doc


def _baseline(
    cfg: RunConfig,
    model: TrainedModel,
    train: pd.DataFrame | None,
    y: np.ndarray,
    score: np.ndarray,
    threshold: float,
    n_resamples: int,
    boot: Bootstrap | None,
) -> dict[str, Any]:
    """The no-skill baseline, fitted on the training labels (the test labels when there are none)."""
    spec = model.spec
    y_base = spec.encode_target(train[spec.target]) if train is not None else y
    skill_metric = cfg.policy.skill.resolved(cfg.task)[0]
    baseline = no_skill_baseline(
        cfg.task,
        y_base,
        y,
        score,
        threshold,
        metrics=tuple(dict.fromkeys((*MARGIN_METRICS[cfg.task], skill_metric))),
        n_resamples=n_resamples,
        seed=cfg.split.seed,
        boot=boot,
    )
    if train is None:
        baseline["fitted_on"] = "test (no training rows given)"
    return baseline


def _fairness(
    cfg: RunConfig,
    test: pd.DataFrame,
    y: np.ndarray,
    score: np.ndarray,
    threshold: float | None,
    n_resamples: int,
    boot: Bootstrap | None,
) -> dict[str, Any] | None:
    """Fairness by each sensitive attribute present in the test rows; None when there is none."""
    attrs = [a for a in cfg.data.sensitive_attributes if a in test.columns]
    if not attrs:
        return None
    if cfg.task != "binary_classification":
        return regression_fairness_report(y, score, test[attrs], min_group_count=cfg.policy.min_group_count)
    y_pred = (score >= threshold).astype(int)
    return fairness_report(
        y,
        y_pred,
        test[attrs],
        min_group_count=cfg.policy.min_group_count,
        n_resamples=n_resamples,
        seed=cfg.split.seed,
        boot=boot,
    )
