"""The one number formatter: every report, page and CLI table prints a value through it.

Before it the model card printed a p-value of 0.00012 as `0.0001` and the drift report as
`0.00012`; now both print `0.00012`. Pure Python, so the CLI and light steps import it for free.
"""

from __future__ import annotations

import json
import math
from typing import Any

MISSING = "—"


def number(value: Any, digits: int = 4) -> str:
    """A value as people read it in a report.

    Floats get `digits` decimals, except non-zero values so small that those decimals would show
    only zeros, which get `digits` significant figures (`1.2e-05`); NaN is `n/a`, infinities `∞`
    and `-∞`. None is an em dash, booleans `yes`/`no`, lists and dicts JSON, anything else `str`.

    Args:
        value: What to print.
        digits: Decimals for ordinary floats (significant figures for tiny ones).

    Returns:
        The text.
    """
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value != 0 and abs(value) < 10 ** (1 - digits):
            return f"{value:.{digits}g}"
        return f"{value:.{digits}f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def signed(value: float | None, digits: int = 3) -> str:
    """A difference with its sign always shown (`+0.012`, `-0.004`)."""
    if value is None:
        return MISSING
    text = number(float(value), digits)
    return text if text.startswith(("-", "n/a")) else f"+{text}"


def percent(value: float | None, digits: int = 1) -> str:
    """A share in 0..1 as a percentage (`0.125` -> `12.5%`)."""
    return MISSING if value is None else f"{100 * value:.{digits}f}%"


def interval(low: float | None, high: float | None, digits: int = 4) -> str:
    """A confidence interval as `low to high` (an em dash when either end is missing)."""
    if low is None or high is None:
        return MISSING
    return f"{number(float(low), digits)} to {number(float(high), digits)}"


def ci_suffix(ci: dict[str, Any] | None, digits: int = 3) -> str:
    """` (95% CI low to high)` for a sentence, or nothing when there is no interval."""
    if not ci or ci.get("low") is None or ci.get("high") is None:
        return ""
    return f" (95% CI {interval(ci['low'], ci['high'], digits)})"
