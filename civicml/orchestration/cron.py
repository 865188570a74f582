"""KFP recurring-run schedules: robfig/cron expressions, checked before anything is sent.

KFP schedules with robfig/cron in its 6-field form, seconds first
(`SEC MIN HOUR DOM MONTH DOW`, e.g. `0 0 2 * * *` = 02:00 daily). A classic 5-field
expression is accepted and converted by prepending `0` seconds; the conversion is
reported so nobody is surprised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class CronError(ValueError):
    """A cron expression KFP would reject; the message names the field and shows a valid example."""


# name, min, max, aliases (robfig/cron: months JAN-DEC, weekdays SUN-SAT, Sunday = 0)
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("seconds", 0, 59, {}),
    ("minutes", 0, 59, {}),
    ("hours", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {
            m: i + 1
            for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"])
        },
    ),
    ("day of week", 0, 6, {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}),
)
_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_EVERY = re.compile(r"@every\s+((\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)")
_EXAMPLE = "'0 0 2 * * *' (02:00 every day) or '0 30 6 * * 1-5' (06:30 on weekdays)"


@dataclass
class Cron:
    """A validated KFP cron expression and how it was derived."""

    expression: str
    original: str
    note: str = ""


def _value(token: str, name: str, lo: int, hi: int, aliases: dict[str, int], expr: str) -> int:
    t = token.upper()
    if t in aliases:
        return aliases[t]
    if not t.isdigit():
        raise CronError(
            f"cron {expr!r}: {name} value {token!r} is not a number"
            + (f" or one of {', '.join(aliases)}" if aliases else "")
            + f"; e.g. {_EXAMPLE}"
        )
    v = int(t)
    if not lo <= v <= hi:
        hint = " (Sunday is 0; 7 is not accepted by KFP)" if name == "day of week" and v == 7 else ""
        raise CronError(f"cron {expr!r}: {name} value {v} is outside {lo}-{hi}{hint}")
    return v


def _check_field(text: str, name: str, lo: int, hi: int, aliases: dict[str, int], expr: str) -> None:
    for part in text.split(","):
        if not part:
            raise CronError(f"cron {expr!r}: empty item in the {name} field {text!r}")
        rng, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise CronError(f"cron {expr!r}: step {step!r} in the {name} field must be a positive number")
        if rng in ("*", "?"):
            if rng == "?" and name not in ("day of month", "day of week"):
                raise CronError(f"cron {expr!r}: '?' is only allowed in day of month or day of week, not {name}")
            continue
        a, dash, b = rng.partition("-")
        start = _value(a, name, lo, hi, aliases, expr)
        if dash:
            end = _value(b, name, lo, hi, aliases, expr)
            if end < start:
                raise CronError(f"cron {expr!r}: range {rng!r} in the {name} field runs backwards")


def parse_cron(expression: str) -> Cron:
    """Validate a cron expression for a KFP recurring run, converting the 5-field form.

    Accepts KFP's 6-field form (`SEC MIN HOUR DOM MONTH DOW`), the classic 5-field form
    (converted by prepending `0` seconds), and robfig/cron descriptors (`@daily`,
    `@every 6h`, ...).

    Raises:
        CronError: naming the bad field and value, with a valid example.
    """
    expr = " ".join((expression or "").split())
    if not expr:
        raise CronError(f"empty cron expression; give e.g. {_EXAMPLE}")
    if expr.startswith("@"):
        if expr in _DESCRIPTORS or _EVERY.fullmatch(expr):
            return Cron(expr, expression)
        raise CronError(
            f"unknown cron descriptor {expr!r}; use one of {', '.join(_DESCRIPTORS)} or "
            "'@every <duration>' such as '@every 6h'"
        )
    fields = expr.split(" ")
    note = ""
    if len(fields) == 5:
        converted = "0 " + expr
        note = f"converted the 5-field cron {expr!r} to KFP's 6-field form {converted!r} (KFP's first field is seconds)"
        fields = converted.split(" ")
        expr = converted
    elif len(fields) != 6:
        raise CronError(
            f"cron {expression!r} has {len(fields)} field(s); KFP expects 6 "
            f"(seconds minutes hours day-of-month month day-of-week), e.g. {_EXAMPLE}"
        )
    for text, (name, lo, hi, aliases) in zip(fields, _FIELDS):
        _check_field(text, name, lo, hi, aliases, expression)
    return Cron(expr, expression, note)
