"""Train one candidate and score it on the validation split: the unit of work of every trial."""

from __future__ import annotations

from typing import Any

import pandas as pd

from civicml.config import RunConfig
from civicml.evaluation.metrics import evaluate_predictions
from civicml.modeling.estimators import build_params, fit_model
from civicml.modeling.preprocessing import FeatureSpec


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
