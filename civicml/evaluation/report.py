"""Evaluation report: the model card's layout before the gate and registration have run."""

from __future__ import annotations

from typing import Any


def render_evaluation_html(title: str, evaluation: dict[str, Any], gate: dict[str, Any] | None = None, cfg=None) -> str:
    """A self-contained, accessible HTML page with metrics, curves, fairness, importance and (optionally) the gate.

    It is the model card (`civicml.evaluation.card`) without lineage, so the evaluate step's
    report and the registered card never disagree about a number.

    Args:
        title: Page title.
        evaluation: The evaluation document.
        gate: The gate decision, when known.
        cfg: RunConfig for the card text; defaults when None.
    """
    from civicml.config import RunConfig
    from civicml.evaluation.card import render_model_card

    cfg = cfg or RunConfig()
    page, _ = render_model_card({"version": evaluation.get("version")}, evaluation, gate, cfg, title=title)
    return page
