"""The trials table as HTML for the KFP UI."""

from __future__ import annotations

import html
from typing import Any


def trials_html(result: dict[str, Any]) -> str:
    """Render the tuning result (best params and every trial) as a self-contained HTML page."""
    trials = result.get("trials", [])
    cols: list[str] = []
    for t in trials:
        for k in t:
            if k not in cols:
                cols.append(k)
    head = "".join(f'<th scope="col">{html.escape(c)}</th>' for c in cols)

    def cell(v: Any) -> str:
        return html.escape(f"{v:.5g}" if isinstance(v, float) else ("—" if v is None else str(v)))

    rows = "".join("<tr>" + "".join(f"<td>{cell(t.get(c))}</td>" for c in cols) + "</tr>" for t in trials)
    best = ", ".join(f"{k}={cell(v)}" for k, v in result.get("best_params", {}).items())
    title = f"Tuning: {result.get('backend')} / {result.get('algorithm')}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #555;"
        f"padding:.2em .5em}}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>Best {html.escape(str(result.get('objective_metric')))} = {cell(result.get('best_value'))} with {best}</p>"
        f"<table><caption>All trials</caption><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></body></html>"
    )


def _columns(trials: list[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for t in trials:
        for k in t:
            if k not in cols:
                cols.append(k)
    return cols


def trials_markdown(result: dict[str, Any]) -> str:
    """Render the tuning result as Markdown: a summary line and one table row per trial."""
    trials = result.get("trials", [])
    cols = _columns(trials)

    def cell(v: Any) -> str:
        text = f"{v:.5g}" if isinstance(v, float) else ("—" if v is None else str(v))
        return text.replace("|", "\\|")

    best = ", ".join(f"{k}={cell(v)}" for k, v in result.get("best_params", {}).items())
    summary = (
        f"**Tuning** ({result.get('backend')} / {result.get('algorithm')}): best "
        f"{result.get('objective_metric')} = {cell(result.get('best_value'))} with {best}"
    )
    lines = [summary, ""]
    if cols:
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        lines.extend("| " + " | ".join(cell(t.get(c)) for c in cols) + " |" for t in trials)
    return "\n".join(lines) + "\n"
