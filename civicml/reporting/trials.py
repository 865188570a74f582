"""The tuning trials table (every trial with its state, value and parameters) as HTML and Markdown."""

from __future__ import annotations

from typing import Any

from civicml.reporting.model import Table
from civicml.reporting.numbers import number
from civicml.reporting.render import STATIC_DIR, render_report


def _context(result: dict[str, Any]) -> dict[str, Any]:
    trials = result.get("trials", [])
    cols: list[str] = []
    for t in trials:
        cols.extend(k for k in t if k not in cols)
    best = ", ".join(f"{k}={number(v)}" for k, v in result.get("best_params", {}).items())
    return {
        "title": f"Tuning: {result.get('backend')} / {result.get('algorithm')}",
        "best": f"Best {result.get('objective_metric')} = {number(result.get('best_value'))} with {best}",
        "table": Table(caption="All trials", headers=cols, rows=[[t.get(c) for c in cols] for t in trials])
        if cols
        else None,
    }


def trials_html(result: dict[str, Any]) -> str:
    """The tuning result (best params and every trial) as a self-contained HTML page."""
    return render_report("trials.j2", "html", css=(STATIC_DIR / "report.css").read_text(), **_context(result))


def trials_markdown(result: dict[str, Any]) -> str:
    """The tuning result as Markdown: a summary line and one table row per trial."""
    return render_report("trials.j2", "md", **_context(result))
