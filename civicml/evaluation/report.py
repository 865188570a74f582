"""Evaluation report as self-contained HTML (the model card builds on it)."""

from __future__ import annotations

import html
from typing import Any


def _table(headers: list[str], rows: list[list[Any]], caption: str) -> str:
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "—" if v is None else str(v)


def render_evaluation_html(title: str, evaluation: dict[str, Any], gate: dict[str, Any] | None = None) -> str:
    """A readable HTML page with metrics, fairness by group and the gate's rules."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts.append(_table(["metric", "value"], [[k, v] for k, v in evaluation["metrics"].items()], "Test metrics"))
    for attr, rep in evaluation.get("fairness", {}).items():
        rows = [
            [g, v["count"], v["selection_rate"], v["tpr"], v["fpr"], "yes" if v["suppressed"] else "no"]
            for g, v in rep["groups"].items()
        ]
        parts.append(
            _table(
                ["group", "count", "selection rate", "TPR", "FPR", "suppressed (small group)"],
                rows,
                f"Fairness by {attr}: demographic parity ratio {rep['demographic_parity_ratio']:.3f}, "
                f"equalized odds difference {rep['equalized_odds_difference']:.3f}",
            )
        )
    if gate:
        rows = [[r["rule"], r["threshold"], r["value"], "PASS" if r["passed"] else "FAIL"] for r in gate["rules"]]
        parts.append(f"<h2>Gate decision: {html.escape(gate['decision'])}</h2>")
        parts.append(_table(["rule", "threshold", "measured", "verdict"], rows, "Gate rules"))
    style = "body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #555;padding:.3em .6em}"
    return f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{style}</style></head><body>{"".join(parts)}</body></html>'
