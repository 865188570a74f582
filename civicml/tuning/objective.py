"""Train one candidate and score it on the validation split: the unit of work of every trial.

Both backends run this same function: Optuna in-process, Katib inside `civicml trial`.
For XGBoost the validation metric is also observed after every boosting round
(`RoundObserver`) so that median stopping can cut poor trials short: Optuna's
MedianPruner locally, Katib's `medianstop` (fed by the per-round lines that
`civicml trial` prints) on a cluster.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from civicml.config import RunConfig
from civicml.evaluation.metrics import evaluate_predictions
from civicml.modeling.estimators import build_params, fit_model
from civicml.modeling.preprocessing import FeatureSpec

# Objective metric -> the XGBoost eval metric that fit_model computes on the validation
# rows every round (it sets eval_metric "auc" for classification, "rmse" for regression).
XGB_ROUND_METRIC = {"roc_auc": "auc", "rmse": "rmse"}


class TuningError(RuntimeError):
    """A search could not produce parameters (all trials failed, cluster refused, timeout...)."""


def per_round_metric(cfg: RunConfig) -> str | None:
    """The XGBoost per-round eval metric matching the objective, or None when there is none.

    Median stopping compares trials on the objective round by round; that is only
    possible for XGBoost and when the objective is one XGBoost evaluates per round.
    """
    if cfg.model.family != "xgboost":
        return None
    return XGB_ROUND_METRIC.get(cfg.tuning.objective_metric)


def make_round_observer(xgb_metric: str, on_round: Callable[[int, float], None]):
    """An XGBoost TrainingCallback calling `on_round(round, value)` after each boosting round.

    `on_round` may raise (e.g. ``optuna.TrialPruned``) to stop training; the exception
    propagates out of `fit`. The callback counts rounds in its `rounds` attribute.
    """
    import xgboost as xgb

    class RoundObserver(xgb.callback.TrainingCallback):
        """Reports the validation metric of every round."""

        def __init__(self) -> None:
            super().__init__()
            self.rounds = 0

        def after_iteration(self, model, epoch: int, evals_log) -> bool:
            self.rounds = epoch + 1
            # With one eval_set XGBoost's sklearn API names it "validation_0".
            logs: dict[str, list[float]] = next(iter(evals_log.values()), {})
            history = logs.get(xgb_metric)
            if history:
                value = float(history[-1])
                if math.isfinite(value):
                    on_round(epoch, value)
            return False

    return RoundObserver()


def train_and_score(
    cfg: RunConfig,
    spec: FeatureSpec,
    params: dict[str, Any],
    train: pd.DataFrame,
    valid: pd.DataFrame,
    callbacks: list[Any] | None = None,
) -> dict[str, float]:
    """Fit with `params` on train and return validation metrics (names as in the config)."""
    full = build_params(cfg.model.family, cfg.model.params, params)
    model = fit_model(
        cfg.model.family, spec, full, train, cfg.model.seed, cfg.model.n_threads, valid=valid, callbacks=callbacks
    )
    y = spec.encode_target(valid[spec.target])
    return evaluate_predictions(cfg.task, y, model.score(valid))["metrics"]


def n_rounds(cfg: RunConfig, params: dict[str, Any]) -> int:
    """Boosting rounds a full XGBoost fit with `params` runs (for the compute-saved figure)."""
    return int(build_params(cfg.model.family, cfg.model.params, params).get("n_estimators", 0))
