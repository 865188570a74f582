"""The model card as a self-contained, accessible HTML page and as Markdown (Jinja2 templates).

Accessibility (WCAG 2.1 AA) choices, kept by the templates:

* `lang="en"`, one `h1`, then `h2`/`h3` in order; a skip link to the main content.
* Every plot is an inline PNG with alt text that states what it shows *and its key numbers*, a
  visible caption and the table of numbers it was drawn from (`<caption>`, `<th scope>`), so
  nothing depends on seeing the image.
* Colour is never the only signal: verdicts are words (PASS / FAIL / NOT ASSESSABLE) with a
  symbol, plot series differ by marker, line style or hatch, and the palette is Okabe-Ito. Text
  colours meet 4.5:1 contrast on their backgrounds.

What the card says is `civicml.evaluation.card.CardData`; its figures are drawn once by
`civicml.reporting.plots` in the evaluate step and passed in here.
"""

from __future__ import annotations

from typing import Any

from civicml.reporting.model import Figure
from civicml.reporting.render import STATIC_DIR, render_report


def render_card(card: Any, figures: list[Figure]) -> tuple[str, str]:
    """Render a `CardData` with its figures.

    Args:
        card: The card's data (`civicml.evaluation.card.card_data`).
        figures: The figures drawn for its evaluation (`civicml.reporting.plots.card_figures`); a
            figure the card places but that is missing is left out, with its section's tables kept.

    Returns:
        (self-contained HTML, Markdown).
    """
    by_key = {f.key: f for f in figures}
    css = (STATIC_DIR / "card.css").read_text()
    return (
        render_report("model_card.j2", "html", card=card, figures=by_key, css=css),
        render_report("model_card.j2", "md", card=card, figures=by_key),
    )
