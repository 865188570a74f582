"""Local hyperparameter search with Optuna, using Katib's algorithm names."""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from civicml.config import ParamSpec, RunConfig
from civicml.modeling.preprocessing import FeatureSpec
from civicml.modeling.search_space import space_for
from civicml.tuning.objective import train_and_score


def make_sampler(algorithm: str, seed: int, space: dict[str, ParamSpec]):
    """Optuna sampler for a Katib algorithm name."""
    import optuna

    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if algorithm == "multivariate-tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if algorithm == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if algorithm == "grid":
        return optuna.samplers.GridSampler(grid_values(space), seed=seed)
    raise ValueError(f"unknown algorithm {algorithm!r}")


def grid_values(space: dict[str, ParamSpec]) -> dict[str, list[Any]]:
    """Explicit grid for GridSampler (double needs `step`, int uses step or 1)."""
    import numpy as np

    grid: dict[str, list[Any]] = {}
    for name, p in space.items():
        if p.type == "categorical":
            grid[name] = list(p.values or [])
        elif p.type == "int":
            step = int(p.step or 1)
            grid[name] = list(range(int(p.min), int(p.max) + 1, step))
        else:
            grid[name] = [float(v) for v in np.arange(p.min, p.max + 1e-12, p.step)]
    return grid


def suggest(trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Draw one parameter set from the space."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.type == "categorical":
            params[name] = trial.suggest_categorical(name, p.values)
        elif p.type == "int":
            params[name] = trial.suggest_int(name, int(p.min), int(p.max), log=p.log, step=int(p.step or 1))
        else:
            params[name] = trial.suggest_float(name, p.min, p.max, log=p.log, step=None if p.log else p.step)
    return params


def run_optuna(
    cfg: RunConfig,
    spec: FeatureSpec,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    on_trial: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the configured search and return best params, best value and a trials table.

    Args:
        cfg: Run config (`tuning` section: algorithm, budget, space, seed).
        spec: Feature spec fitted on train.
        train: Training rows.
        valid: Validation rows the objective is measured on.
        on_trial: Progress callback `(done, total)`.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t = cfg.tuning
    space = space_for(cfg.model.family, t.search_space)
    sampler = make_sampler(t.algorithm, t.seed, space)
    pruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=t.early_stopping.min_trials_required, n_warmup_steps=t.early_stopping.start_step
        )
        if t.early_stopping
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(direction=t.direction, sampler=sampler, pruner=pruner)

    def objective(trial) -> float:
        params = suggest(trial, space)
        metrics = train_and_score(cfg, spec, params, train, valid)
        for name, value in metrics.items():
            trial.set_user_attr(name, value)
        if t.objective_metric not in metrics:
            raise ValueError(f"objective metric {t.objective_metric!r} not among {sorted(metrics)}")
        return metrics[t.objective_metric]

    def _cb(study, trial) -> None:
        if on_trial:
            on_trial(len(study.trials), t.max_trials)

    study.optimize(objective, n_trials=t.max_trials, callbacks=[_cb], catch=(ValueError,))
    rows = []
    for tr in study.trials:
        rows.append({"number": tr.number, "state": tr.state.name, "value": tr.value, **tr.params})
    completed = [tr for tr in study.trials if tr.state.name == "COMPLETE"]
    if not completed:
        raise RuntimeError(f"all {len(study.trials)} tuning trials failed; see the trials table")
    return {
        "backend": "optuna",
        "algorithm": t.algorithm,
        "objective_metric": t.objective_metric,
        "best_params": study.best_params,
        "best_value": study.best_value,
        "trials": rows,
    }
