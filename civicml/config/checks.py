"""Rules that span keys or sections of the config, kept apart from the schema that declares the keys.

Each raises ValueError with a message that names the key, the problem and the fix; pydantic turns it into
one line of the ConfigError that `parse_config` raises. The vocabulary they check against (metrics and
their directions, families and their parameters, Katib's algorithms) is `civicml.catalog`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from civicml.catalog import (
    FAIRNESS_METRICS_BY_TASK,
    FAMILY_PARAMS,
    HIGHER_IS_BETTER_METRICS,
    LOWER_IS_BETTER_METRICS,
    TASK_DEFAULT_OBJECTIVE,
    TASK_METRICS,
    direction,
    family_task_error,
)

if TYPE_CHECKING:
    from civicml.config.model import ParamSpec
    from civicml.config.run import RunConfig

PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_param_spec(p: ParamSpec) -> None:
    """Raise ValueError when one search-space parameter is inconsistent (bounds, step, values)."""
    if p.type == "categorical":
        if not p.values:
            raise ValueError("categorical parameter needs a non-empty 'values' list, e.g. values: [a, b]")
    else:
        if p.min is None or p.max is None:
            raise ValueError(f"{p.type} parameter needs 'min' and 'max', e.g. min: 0.01, max: 0.3")
        if p.min >= p.max:
            raise ValueError(f"min ({p.min}) must be < max ({p.max})")
        if p.log and p.min <= 0:
            raise ValueError(f"log scale needs min > 0, got min={p.min}")
        if p.type == "int" and (p.min != int(p.min) or p.max != int(p.max)):
            raise ValueError(f"int parameter needs whole-number bounds, got {p.min}..{p.max}")
        if p.step is not None:
            if p.step <= 0 or p.step > (p.max - p.min) * (1 + 1e-9):
                raise ValueError(f"step ({p.step}) must be > 0 and <= max - min ({p.max - p.min})")
            if p.log:
                raise ValueError("a log-scale parameter cannot have a step; drop 'step' or set log: false")
            if p.type == "int" and p.step != int(p.step):
                raise ValueError(f"int parameter needs a whole-number step, got {p.step}")
    if p.values is not None and p.type != "categorical":
        raise ValueError(f"'values' is only for categorical parameters; this one is {p.type}")
    if p.values is not None:
        if len({str(v) for v in p.values}) != len(p.values):
            raise ValueError(
                f"categorical values must be distinct (as text, which is how Katib passes them): {p.values}"
            )
        if any(not isinstance(v, (str, int, float, bool)) for v in p.values):
            raise ValueError(f"categorical values must be strings, numbers or booleans, got {p.values}")
    return None


#: Values Katib can pass to a trial safely: its webhook joins the trial's args with spaces
#: into one `sh -c` string without quoting, so a space or shell character would split or
#: run as shell syntax.
KATIB_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.+-]+")


def check_katib_arg_values(space: dict[str, ParamSpec]) -> None:
    """Raise ValueError for a categorical value Katib would pass to `sh -c` unquoted."""
    for name, p in space.items():
        if p.type != "categorical":
            continue
        bad = [v for v in p.values or [] if not KATIB_SAFE_VALUE.fullmatch(str(v))]
        if bad:
            raise ValueError(
                f"search_space.{name}: value(s) {bad!r} contain spaces or shell characters; Katib passes trial "
                "arguments to `sh -c` unquoted, so they would break the trial command. Use letters, digits and "
                "_ . + - only (e.g. 'squared_error' rather than 'squared error')"
            )


def check_space_for_algorithm(algorithm: str, space: dict[str, ParamSpec], max_trials: int) -> None:
    """Raise ValueError when `space` cannot be searched by `algorithm` (the same rules Katib applies)."""
    if algorithm == "cmaes":
        continuous = [n for n, p in space.items() if p.type != "categorical"]
        if len(continuous) < 2:
            raise ValueError(
                f"algorithm cmaes needs at least two continuous (double/int) parameters in search_space, "
                f"got {continuous or 'none'}; add one or choose tpe"
            )
    if algorithm == "grid":
        bad = [n for n, p in space.items() if p.grid_size() is None]
        if bad:
            raise ValueError(f"algorithm grid needs 'step' on every double parameter (and no log scale): {bad}")
        combos = 1
        for p in space.values():
            combos *= p.grid_size() or 1
        if max_trials > combos:
            raise ValueError(
                f"algorithm grid: max_trials ({max_trials}) exceeds the {combos} grid points; Katib rejects "
                f"this, lower max_trials to {combos} or refine the grid"
            )


def check_policy_metric_names(min_metrics: dict[str, float] | None, max_metrics: dict[str, float]) -> None:
    """Raise ValueError when a gate metric is unknown or listed under the wrong direction."""
    for name in min_metrics or {}:
        if name in LOWER_IS_BETTER_METRICS:
            raise ValueError(f"{name} is lower-is-better: put it under policy.max_metrics, not min_metrics")
        if name not in HIGHER_IS_BETTER_METRICS:
            raise ValueError(
                f"unknown metric {name!r} in policy.min_metrics; use one of {', '.join(HIGHER_IS_BETTER_METRICS)}"
            )
    for name in max_metrics:
        if name in HIGHER_IS_BETTER_METRICS:
            raise ValueError(f"{name} is higher-is-better: put it under policy.min_metrics, not max_metrics")
        if name not in LOWER_IS_BETTER_METRICS:
            raise ValueError(
                f"unknown metric {name!r} in policy.max_metrics; use one of {', '.join(LOWER_IS_BETTER_METRICS)}"
            )


def check_known_metric(value: str | None, key: str | None = None) -> str | None:
    """`value` when it is a metric civicml computes (or None); else ValueError listing the metrics."""
    known = HIGHER_IS_BETTER_METRICS + LOWER_IS_BETTER_METRICS
    if value is not None and value not in known:
        where = f" in {key}" if key else ""
        raise ValueError(f"unknown metric {value!r}{where}; use one of {', '.join(known)}")
    return value


def check_family(cfg: RunConfig) -> RunConfig:
    """Refuse a family that cannot fit the task, parameters it does not accept, and workers it cannot use."""
    family = cfg.model.family
    wrong_task = family_task_error(family, cfg.task)
    if wrong_task:
        raise ValueError(wrong_task)
    allowed = FAMILY_PARAMS[family]
    for key, names in (("model.params", cfg.model.params), ("tuning.search_space", cfg.tuning.search_space)):
        unknown = sorted(set(names) - allowed)
        if unknown:
            raise ValueError(
                f"{key} has {unknown}, which model.family={family!r} does not accept; "
                f"valid names: {', '.join(sorted(allowed))}. When switching families, also set "
                f"{key} (or leave tuning.search_space empty to use the family's default space)"
            )
    if cfg.training.workers > 1 and family != "xgboost":
        raise ValueError(
            f"training.workers={cfg.training.workers} needs model.family 'xgboost' (XGBoost's collective); "
            f"{family!r} trains in one process: set training.workers: 1"
        )
    return cfg


def check_against_task(cfg: RunConfig) -> RunConfig:
    """Refuse metric names the task cannot produce, before any step runs; fill task defaults.

    Checked: `tuning.objective_metric` and `tuning.direction`, `policy.min_metrics`/`max_metrics`,
    `policy.fairness[*].metric` and `policy.skill.metric`. Each message names the key and the fix.
    Unset tuning keys take the task's default (roc_auc/maximize; rmse/minimize for regression).
    """
    task = cfg.task
    produced = TASK_METRICS[task]
    tuning = cfg.tuning
    if "objective_metric" not in tuning.model_fields_set:
        tuning.objective_metric = TASK_DEFAULT_OBJECTIVE[task]
    metric = tuning.objective_metric
    if metric not in produced:
        raise ValueError(
            f"tuning.objective_metric {metric!r} is not computed for task {task}; use one of {', '.join(produced)} "
            f"(e.g. tuning: {{objective_metric: {TASK_DEFAULT_OBJECTIVE[task]}}})"
        )
    wanted = direction(metric)
    if "direction" not in tuning.model_fields_set:
        tuning.direction = wanted
    elif tuning.direction != wanted:
        raise ValueError(
            f"tuning.direction is {tuning.direction!r}, but {metric} is best {wanted}d: set direction: {wanted}"
        )
    policy = cfg.policy
    for key, names in (("policy.min_metrics", policy.min_metrics or {}), ("policy.max_metrics", policy.max_metrics)):
        wrong = sorted(set(names) - set(produced))
        if wrong:
            raise ValueError(
                f"{key} has {wrong}, which task {task} does not compute (they would fail every model); "
                f"use metrics of {task}: {', '.join(produced)}"
            )
    fair = FAIRNESS_METRICS_BY_TASK[task]
    for i, rule in enumerate(policy.fairness):
        if rule.metric not in fair:
            raise ValueError(
                f"policy.fairness[{i}].metric {rule.metric!r} is not measured for task {task}; use one of "
                f"{', '.join(fair)}"
            )
    if policy.skill.metric is not None and policy.skill.metric not in produced:
        raise ValueError(
            f"policy.skill.metric {policy.skill.metric!r} is not computed for task {task}; use one of "
            f"{', '.join(produced)}"
        )
    return cfg
