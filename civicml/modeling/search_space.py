"""Search spaces: the family defaults, resolution against the algorithm, grids and value coercion.

One search space (``tuning.search_space`` in the config, Katib's parameter vocabulary:
``double``/``int``/``categorical``) drives both backends. These helpers are shared by
the Optuna backend, the Katib Experiment builder and the ``civicml trial`` entrypoint
so that a parameter means the same thing everywhere.
"""

from __future__ import annotations

import math
from typing import Any

from civicml.catalog import DEFAULT_SEARCH_SPACES
from civicml.config import ConfigError, ParamSpec, check_space_for_algorithm

# The families' default spaces are declared in the catalog (plain data); here they become ParamSpecs.
DEFAULT_SPACES: dict[str, dict[str, ParamSpec]] = {
    family: {name: ParamSpec(**spec) for name, spec in space.items()} for family, space in DEFAULT_SEARCH_SPACES.items()
}


def space_for(
    family: str, declared: dict[str, ParamSpec], algorithm: str | None = None, max_trials: int = 1
) -> dict[str, ParamSpec]:
    """The declared space, or the family's default when none is declared.

    Args:
        family: Model family (``xgboost``, ``logistic_regression``, ``random_forest``).
        declared: ``tuning.search_space`` from the config (may be empty).
        algorithm: When given, the resolved space is checked against it (cmaes needs two
            continuous parameters, grid needs steps and enough points).
        max_trials: Budget, for the grid-size check.

    Raises:
        ConfigError: the resolved space cannot be searched by `algorithm`; names the key.
    """
    space = dict(declared) if declared else dict(DEFAULT_SPACES[family])
    if algorithm is not None:
        try:
            check_space_for_algorithm(algorithm, space, max_trials)
        except ValueError as err:
            origin = "tuning.search_space" if declared else f"tuning.search_space (empty: the {family} default)"
            raise ConfigError(f"invalid config: {origin}: {err}") from None
    return space


def grid_values(space: dict[str, ParamSpec]) -> dict[str, list[Any]]:
    """Explicit grid for Optuna's GridSampler (double needs `step`, int uses step or 1)."""
    grid: dict[str, list[Any]] = {}
    for name, p in space.items():
        if p.type == "categorical":
            grid[name] = list(p.values or [])
        elif p.type == "int":
            lo, hi = p.bounds()
            grid[name] = list(range(int(lo), int(hi) + 1, int(p.step or 1)))
        else:
            if p.step is None:
                raise ConfigError(f"invalid config: tuning.search_space.{name}: grid search needs 'step'")
            n = p.grid_size() or 0
            # Round to the step's precision so 0.1 + 2*0.1 prints (and matches Katib) as 0.3.
            digits = max(0, -math.floor(math.log10(p.step))) + 6
            lo = p.bounds()[0]
            grid[name] = [round(lo + i * p.step, digits) for i in range(n)]
    return grid


def coerce_value(name: str, spec: ParamSpec, raw: Any) -> Any:
    """Turn one parameter value (often text, as Katib substitutes it) into its typed form.

    Raises:
        ValueError: the value is not of the parameter's type or lies outside its range,
            naming the parameter, the value and the allowed range.
    """
    if spec.type == "categorical":
        for choice in spec.values or []:
            if raw == choice or str(raw) == str(choice):
                return choice
        raise ValueError(f"parameter {name}: {raw!r} is not one of {spec.values}")
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name}: {raw!r} is not a number ({spec.type} in {spec.min}..{spec.max})") from None
    if not math.isfinite(number):
        raise ValueError(f"parameter {name}: {raw!r} is not a finite number")
    # Katib and Optuna may print bounds with rounding noise; allow a relative hair.
    tol = 1e-9 * max(1.0, abs(spec.max or 0.0), abs(spec.min or 0.0))
    if number < (spec.min or 0.0) - tol or number > (spec.max or 0.0) + tol:
        raise ValueError(f"parameter {name}: {raw!r} is outside {spec.min}..{spec.max}")
    if spec.type == "int":
        if number != int(number):
            raise ValueError(f"parameter {name}: {raw!r} is not a whole number")
        return int(number)
    return number


def coerce_params(space: dict[str, ParamSpec], raw: dict[str, Any]) -> dict[str, Any]:
    """Type and range-check a full parameter set against `space`.

    Raises:
        ValueError: a parameter is unknown, missing or invalid (message lists the space).
    """
    unknown = sorted(set(raw) - set(space))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; the search space has {sorted(space)}")
    missing = sorted(set(space) - set(raw))
    if missing:
        raise ValueError(f"missing parameter(s) {missing}; give every parameter of the search space {sorted(space)}")
    return {name: coerce_value(name, space[name], raw[name]) for name in space}
