"""Local hyperparameter search with Optuna, using Katib's algorithm names.

Katib algorithm -> Optuna sampler (the same samplers Katib's own Optuna suggestion
service uses, so a search behaves alike in both places):

    random -> RandomSampler, tpe -> TPESampler, multivariate-tpe -> TPESampler(multivariate=True),
    cmaes -> CmaEsSampler, grid -> GridSampler;  early stopping medianstop -> MedianPruner.

Every sampler is seeded with `tuning.seed`. Trials run one at a time (`n_jobs=1`)
whatever `tuning.parallel_trials` says: parallel trials finish in a timing-dependent
order, which changes what the sampler has seen when it proposes the next point, so
the search would no longer be reproducible. `parallel_trials` applies to Katib only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from civicml.config import ParamSpec, RunConfig
from civicml.modeling.preprocessing import FeatureSpec
from civicml.modeling.search_space import grid_values, space_for
from civicml.tuning.objective import (
    TuningError,
    make_round_observer,
    n_rounds,
    per_round_metric,
    train_and_score,
)

__all__ = ["grid_values", "make_pruner", "make_sampler", "run_optuna", "suggest"]


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


def make_pruner(cfg: RunConfig):
    """MedianPruner for `early_stopping: medianstop` (Katib's settings, same meaning), else no pruning."""
    import optuna

    es = cfg.tuning.early_stopping
    if es is None:
        return optuna.pruners.NopPruner()
    # Katib's start_step counts reported values from 1; Optuna's warm-up counts steps
    # (boosting rounds, numbered from 0) to skip, so start_step=5 prunes from the 5th round on.
    return optuna.pruners.MedianPruner(n_startup_trials=es.min_trials_required, n_warmup_steps=es.start_step - 1)


def suggest(trial, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Draw one parameter set from the space."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.type == "categorical":
            params[name] = trial.suggest_categorical(name, p.values)
        elif p.type == "int":
            lo, hi = p.bounds()
            params[name] = trial.suggest_int(name, int(lo), int(hi), log=p.log, step=int(p.step or 1))
        else:
            lo, hi = p.bounds()
            params[name] = trial.suggest_float(name, lo, hi, log=p.log, step=None if p.log else p.step)
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
        cfg: Run config (`tuning` section: algorithm, budget, space, seed, early stopping).
        spec: Feature spec fitted on train.
        train: Training rows.
        valid: Validation rows the objective is measured on.
        on_trial: Progress callback `(done, total)`, called after every trial.

    Returns:
        ``backend``, ``algorithm``, ``objective_metric``, ``direction``, ``best_params``,
        ``best_value``, ``trials`` (one row per trial: number, state, value, rounds, params),
        and ``rounds_run``/``rounds_full`` (boosting rounds run vs. what the same trials
        would have run without pruning; equal when nothing was pruned).

    Raises:
        TuningError: every trial failed, or more than `max_failed_trials` failed.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t = cfg.tuning
    space = space_for(cfg.model.family, t.search_space, t.algorithm, t.max_trials)
    study = optuna.create_study(
        direction=t.direction, sampler=make_sampler(t.algorithm, t.seed, space), pruner=make_pruner(cfg)
    )
    failures: list[str] = []
    after_trial = _after_trial(t.max_failed_trials, t.max_trials, failures, on_trial)
    # n_jobs=1 on purpose: see the module docstring (reproducibility over wall time).
    objective = _objective(cfg, spec, train, valid, space)
    study.optimize(objective, n_trials=t.max_trials, n_jobs=1, callbacks=[after_trial], catch=(ValueError,))
    if len(failures) > t.max_failed_trials:
        raise TuningError(
            f"{len(failures)} tuning trials failed (tuning.max_failed_trials = {t.max_failed_trials}); "
            f"first: {failures[0]}"
        )
    if not any(tr.state == optuna.trial.TrialState.COMPLETE for tr in study.trials):
        raise TuningError(f"all {len(study.trials)} tuning trials failed or were pruned; see the trials table")
    rows, rounds_run, rounds_full = _trials_table(cfg, study)
    return {
        "backend": "optuna",
        "algorithm": t.algorithm,
        "objective_metric": t.objective_metric,
        "direction": t.direction,
        "seed": t.seed,
        "best_params": study.best_params,
        "best_value": study.best_value,
        "best_trial": study.best_trial.number,
        "trials": rows,
        "pruned": sum(1 for r in rows if r["state"] == "PRUNED"),
        "rounds_run": rounds_run,
        "rounds_full": rounds_full,
    }


def _after_trial(
    max_failed: int, max_trials: int, failures: list[str], on_trial: Callable[[int, int], None] | None
) -> Callable[[Any, Any], None]:
    """The study's callback: collect failures in `failures`, stop past `max_failed`, report progress."""
    import optuna

    def after_trial(study, trial) -> None:
        if trial.state == optuna.trial.TrialState.FAIL:
            failures.append(f"trial {trial.number}: {trial.user_attrs.get('error', 'failed')}")
            if len(failures) > max_failed:
                study.stop()
        if on_trial:
            on_trial(len(study.trials), max_trials)

    return after_trial


def _objective(
    cfg: RunConfig, spec: FeatureSpec, train: pd.DataFrame, valid: pd.DataFrame, space: dict[str, ParamSpec]
) -> Callable[[Any], float]:
    """Optuna's objective: draw a parameter set, train, score on `valid`; report rounds for pruning.

    A trial that fails with ValueError keeps its message in the `error` user attribute (Optuna records
    it as FAIL); every metric of a completed trial is kept as a user attribute.
    """
    import optuna

    t = cfg.tuning
    round_metric = per_round_metric(cfg)

    def objective(trial) -> float:
        params = suggest(trial, space)
        observer = None
        if round_metric is not None:

            def on_round(step: int, value: float) -> None:
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at round {step + 1}")

            observer = make_round_observer(round_metric, on_round)
        try:
            metrics = train_and_score(
                cfg, spec, params, train, valid, callbacks=None if observer is None else [observer]
            )
            if t.objective_metric not in metrics:
                raise ValueError(
                    f"objective metric {t.objective_metric!r} (tuning.objective_metric) is not among the "
                    f"metrics a {cfg.task} trial produces: {sorted(metrics)}"
                )
        except ValueError as err:
            # Kept for the failure summary; Optuna records the trial as FAIL (catch=ValueError).
            trial.set_user_attr("error", str(err))
            raise
        finally:
            if observer is not None:
                trial.set_user_attr("rounds", observer.rounds)
        for name, value in metrics.items():
            trial.set_user_attr(name, value)
        return metrics[t.objective_metric]

    return objective


def _trials_table(cfg: RunConfig, study) -> tuple[list[dict[str, Any]], int, int]:
    """One row per trial (number, state, value, rounds, params), rounds run and rounds without pruning."""
    import optuna

    rows = []
    rounds_run = rounds_full = 0
    for tr in study.trials:
        rounds = tr.user_attrs.get("rounds")
        row: dict[str, Any] = {"number": tr.number, "state": tr.state.name, "value": tr.value}
        if tr.state == optuna.trial.TrialState.PRUNED and tr.intermediate_values:
            # A pruned trial's value is its last reported round, shown for context only.
            row["value"] = tr.intermediate_values[max(tr.intermediate_values)]
        if rounds is not None:
            row["rounds"] = rounds
            rounds_run += rounds
            rounds_full += n_rounds(cfg, tr.params)
        rows.append({**row, **tr.params})
    return rows, rounds_run, rounds_full
