"""The no-skill baseline a model must beat, with the model's margin over it and its interval.

Classification: scikit-learn's `DummyClassifier(strategy="prior")` fitted on the training labels — it
predicts the majority class and scores every row with the training prevalence. Regression:
`DummyRegressor(strategy="mean")`, the training mean. The baseline is scored on the same test rows as
the model; each margin (model minus baseline, sign flipped for lower-is-better metrics, so a positive
margin always means "better than no skill") gets a paired percentile bootstrap interval: both are
evaluated on the same resample weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.dummy import DummyClassifier, DummyRegressor

from civicml.catalog import LOWER_IS_BETTER
from civicml.evaluation.bootstrap import Bootstrap, Resampling, percentile_intervals
from civicml.evaluation.metrics import classification_metrics, metric_statistic, regression_metrics

if TYPE_CHECKING:
    from typing_extensions import Unpack

# Margins computed for every evaluation (cheap); the policy's skill metric is added when it is another.
MARGIN_METRICS = {"binary_classification": ("balanced_accuracy", "accuracy"), "regression": ("rmse", "mae")}
# The baseline's label is its majority class, whatever threshold the model uses.
BASELINE_THRESHOLD = 0.5


def baseline_scores(task: str, y_train: np.ndarray, n_test: int) -> tuple[np.ndarray, str]:
    """The baseline's scores for `n_test` rows and a description of it."""
    x_train = np.zeros((len(y_train), 1))
    if task == "binary_classification":
        dummy = DummyClassifier(strategy="prior").fit(x_train, np.asarray(y_train).astype(int))
        proba = dummy.predict_proba(np.zeros((n_test, 1)))
        p1 = proba[:, list(dummy.classes_).index(1)] if 1 in dummy.classes_ else np.zeros(n_test)
        return p1, f"majority class {int(dummy.predict(np.zeros((1, 1)))[0])}, scored with the prior {p1[0]:.4f}"
    dummy = DummyRegressor(strategy="mean").fit(x_train, np.asarray(y_train, dtype="float64"))
    pred = dummy.predict(np.zeros((n_test, 1)))
    return pred, f"training mean {pred[0]:.4f}"


def _point_metrics(
    task: str, y_test: np.ndarray, score: np.ndarray, base: np.ndarray, threshold: float
) -> tuple[dict[str, float], dict[str, float]]:
    """The model's and the baseline's metrics on the test rows."""
    if task == "binary_classification":
        return classification_metrics(y_test, score, threshold), classification_metrics(
            y_test, base, BASELINE_THRESHOLD
        )
    return regression_metrics(y_test, score), regression_metrics(y_test, base)


def no_skill_baseline(
    task: str,
    y_train: np.ndarray,
    y_test: np.ndarray,
    score: np.ndarray,
    threshold: float = 0.5,
    metrics: tuple[str, ...] | None = None,
    boot: Bootstrap | None = None,
    **resampling: Unpack[Resampling],
) -> dict[str, Any]:
    """Baseline metrics on the test rows and the model's margins over them.

    Args:
        task: `binary_classification` or `regression`.
        y_train: Training labels/values (the baseline is fitted on them, never on test rows).
        y_test: Test labels/values.
        score: The model's test scores (probabilities or predictions).
        threshold: The model's decision threshold (the baseline predicts its majority class).
        metrics: Metrics to compute margins for; default `MARGIN_METRICS[task]`.
        boot: A shared `Bootstrap` for the margin intervals (its resamples, seed and level apply);
            the margins get their intervals when it runs.
        **resampling: Without `boot`, the own paired bootstrap's settings (`Resampling`: 1000
            resamples by default; 0 = no intervals).

    Returns:
        `{strategy, metrics, margins: {metric: {model, baseline, margin, low, high, level, n_resamples}}}`.
    """
    y_test = np.asarray(y_test)
    base, strategy = baseline_scores(task, y_train, len(y_test))
    which = tuple(metrics or MARGIN_METRICS[task])
    model_m, base_m = _point_metrics(task, y_test, score, base, threshold)
    sign = {m: (-1.0 if m in LOWER_IS_BETTER else 1.0) for m in which}
    margins = {
        m: {"model": model_m[m], "baseline": base_m[m], "margin": sign[m] * (model_m[m] - base_m[m])} for m in which
    }
    if resampling.get("n_resamples", 1000) > 0 or boot is not None:
        model_stat = metric_statistic(task, y_test, score, threshold, which)
        base_stat = metric_statistic(task, y_test, base, BASELINE_THRESHOLD, which)

        def margin(W: np.ndarray) -> dict[str, np.ndarray]:
            a, b = model_stat(W), base_stat(W)
            return {m: sign[m] * (a[m] - b[m]) for m in which}

        def attach(draws: dict[str, np.ndarray]) -> None:
            for m, interval in percentile_intervals(draws, own.n_resamples, own.level).items():
                margins[m].update(interval)

        own = boot or Bootstrap(**resampling)
        own.add(len(y_test), margin, then=attach)
        if boot is None:
            own.run()
    return {"strategy": strategy, "fitted_on": "train", "metrics": base_m, "margins": margins}
