"""Rendering the model card and the evaluation report (the card's layout before the gate and registration).

The data is `civicml.evaluation.card.card_data`; the templates and figures are `civicml.reporting`.
"""

from __future__ import annotations

from typing import Any


def render_evaluation_html(
    title: str, evaluation: dict[str, Any], gate: dict[str, Any] | None = None, cfg=None, figures: list | None = None
) -> str:
    """A self-contained, accessible HTML page with metrics, curves, fairness, importance and (optionally) the gate.

    It is the model card (`civicml.evaluation.card`) without lineage, so the evaluate step's
    report and the registered card never disagree about a number.

    Args:
        title: Page title.
        evaluation: The evaluation document.
        gate: The gate decision, when known.
        cfg: RunConfig for the card text; defaults when None.
        figures: The evaluation's figures (`civicml.reporting.plots.card_figures`); drawn here when None.
    """
    from civicml.config import RunConfig

    cfg = cfg or RunConfig()
    page, _ = render_model_card(
        {"version": evaluation.get("version")}, evaluation, gate, cfg, title=title, figures=figures
    )
    return page


def render_model_card(
    manifest_like: dict[str, Any],
    evaluation: dict[str, Any],
    gate: dict[str, Any] | None,
    cfg,
    title: str | None = None,
    status: Any = None,
    figures: list | None = None,
) -> tuple[str, str]:
    """The card as (HTML, Markdown): `card_data` rendered by `civicml.reporting.card.render_card`.

    Args:
        figures: The evaluation's figures as drawn by the evaluate step; drawn here only when None
            (a card rendered outside a pipeline run).
        Others: as `card_data`.
    """
    from civicml.evaluation.card import card_data
    from civicml.reporting.card import render_card

    if figures is None:
        from civicml.reporting.plots import card_figures

        figures = card_figures(evaluation)
    return render_card(card_data(manifest_like, evaluation, gate, cfg, title=title, status=status), figures)
