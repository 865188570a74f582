"""Jinja2 environments for every page and document civicml renders from templates.

HTML templates autoescape everything (a reason typed into a form, a group name from the data, a
config string are all untrusted); Markdown templates are plain text.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _fmt(value: Any, digits: int = 3) -> str:
    """Numbers with `digits` decimals, None as an em dash, anything else as text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _when(value: Any) -> str:
    """An ISO 8601 timestamp as people read it: `1 Dec 2026, 21:46 UTC` (unparseable text unchanged)."""
    from datetime import datetime, timezone

    try:
        t = datetime.fromisoformat(str(value)).astimezone(timezone.utc)
    except (TypeError, ValueError):
        return "—" if value is None else str(value)
    return f"{t.day} {t:%b %Y, %H:%M} UTC"


def _short(value: Any, n: int = 16) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= n else text[:n] + "…"


@lru_cache(maxsize=2)
def environment(html: bool = True) -> Environment:
    """The template environment: autoescaping for HTML, plain for Markdown."""
    env = Environment(
        loader=PackageLoader("civicml.reporting", "templates"),
        autoescape=select_autoescape(default=html, default_for_string=html) if html else False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    env.filters["short"] = _short
    env.filters["when"] = _when
    return env


def render(template: str, **context: Any) -> str:
    """Render `template` (its suffix decides: `.md.j2` is plain text, anything else HTML)."""
    return environment(not template.endswith(".md.j2")).get_template(template).render(**context)
