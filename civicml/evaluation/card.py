"""Model card: the document a reviewer reads before approving a model."""

from __future__ import annotations

from typing import Any

from civicml.evaluation.report import render_evaluation_html


def render_model_card(manifest_like: dict[str, Any], evaluation: dict[str, Any], gate: dict[str, Any], cfg) -> tuple[str, str]:
    """Return (HTML, Markdown) model cards for one version."""
    html_doc = render_evaluation_html(f"{cfg.card.title} — {manifest_like['version']}", evaluation, gate)
    lines = [f"# {cfg.card.title} — {manifest_like['version']}", "", f"Intended use: {cfg.card.intended_use}", "",
             f"Limitations: {cfg.card.limitations}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in evaluation["metrics"].items()]
    lines += ["", f"Gate decision: **{gate['decision']}** ({gate['reason']})"]
    return html_doc, "\n".join(lines) + "\n"
