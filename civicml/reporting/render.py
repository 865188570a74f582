"""Jinja2 environments for every page and document civicml renders from templates.

HTML templates autoescape everything (a reason typed into a form, a group name from the data, a
config string are all untrusted); Markdown templates are plain text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from civicml.reporting.model import Cell, slug
from civicml.reporting.numbers import number

STATIC_DIR = Path(__file__).resolve().parent / "static"


def _cell(value: Any, digits: int = 4) -> str:
    """A table cell's text: a `Cell`'s value, else the value, through the one number formatter."""
    return number(value.value if isinstance(value, Cell) else value, digits)


def _cell_css(value: Any) -> str:
    return value.css if isinstance(value, Cell) else ""


def _md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell (pipes escaped, one line)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


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
    # `fmt` (3 decimals, the console's tables) and `num` (4, the reports) are the one formatter.
    env.filters["fmt"] = lambda value, digits=3: number(value, digits)
    env.filters["num"] = number
    env.filters["cell"] = _cell
    env.filters["cellcss"] = _cell_css
    env.filters["mdcell"] = _md_cell
    env.filters["slug"] = slug
    env.filters["short"] = _short
    env.filters["when"] = _when
    return env


def warm_templates(prefixes: tuple[str, ...] = ("model_card", "report/")) -> None:
    """Compile the model card's templates into both environments' caches (the run's warm step host calls this).

    Args:
        prefixes: Template names to compile by their start; the default is what evaluate and register render.
    """
    for html in (True, False):
        env = environment(html)
        for name in env.list_templates():
            if name.startswith(prefixes):
                env.get_template(name)


def render(template: str, **context: Any) -> str:
    """Render `template` (its suffix decides: `.md.j2` is plain text, anything else HTML)."""
    return environment(not template.endswith(".md.j2")).get_template(template).render(**context)


def render_report(template: str, fmt: str, **context: Any) -> str:
    """Render a report layout (`model_card.j2`, `drift.j2`, ...) as `html` or `md`.

    One layout serves both formats: it imports the building blocks of `fmt`
    (`report/blocks.html.j2` or `report/blocks.md.j2`), so HTML and Markdown say the same things.
    """
    if fmt not in ("html", "md"):
        raise ValueError(f"unknown report format {fmt!r}; use html or md")
    text = environment(fmt == "html").get_template(template).render(fmt=fmt, **context)
    if fmt == "md":
        # Blocks put blank lines around themselves; keep exactly one between blocks.
        text = re.sub(r"\n[ \t]*(\n[ \t]*)+\n", "\n\n", text).strip() + "\n"
    return text
