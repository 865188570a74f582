"""The typed pieces every report is made of: tables (with their cells) and figures.

Report data (a model card, a drift report, an A/B report) is built from these by the layer that
knows the numbers; the templates in `templates/` turn the same objects into HTML and Markdown,
so the two formats cannot disagree. Values stay values (floats, ints, None) until a template
prints them through `civicml.reporting.numbers.number`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

FIGURES_INDEX = "figures.json"


class Cell(BaseModel):
    """A table cell whose text carries a meaning of its own (a verdict), shown with a class."""

    value: Any = None
    css: str = ""


class Table(BaseModel):
    """A data table: a caption, column headers and rows; the first column names the row.

    Args:
        caption: What the table shows (every table has one).
        headers: Column headers.
        rows: One list of values (or `Cell`) per row, as long as `headers`.
        numeric: Indexes of columns holding numbers (right-aligned).
        digits: Decimals for floats in this table.
        css: Class of the table (e.g. `rules`).
    """

    caption: str
    headers: list[str]
    rows: list[list[Any]] = Field(default_factory=list)
    numeric: set[int] = Field(default_factory=set)
    digits: int = 4
    css: str = ""

    def model_post_init(self, context: Any) -> None:  # noqa: D102 - pydantic hook
        for row in self.rows:
            if len(row) != len(self.headers):
                raise ValueError(f"table {self.caption!r}: a row has {len(row)} cells, the header {len(self.headers)}")


class Figure(BaseModel):
    """A chart drawn once (PNG), the sentence that says what it shows, and the numbers it was drawn from.

    Args:
        key: Stable name (`roc`, `fairness-sex`, `drift-income`) a report places it by.
        title: Short title.
        alt: Alt text: one or more sentences with the key numbers, never a Python repr.
        png: The image, base64-encoded PNG.
        table: The data behind the chart, shown beside it.
        width: Display width in CSS pixels, when the image should not show at its own size.
        height: Display height, with `width`.
    """

    key: str
    title: str
    alt: str
    png: str
    table: Table
    width: int | None = None  # the size to show it at, in CSS pixels (None: the image's own)
    height: int | None = None

    @property
    def filename(self) -> str:
        """The PNG's file name when figures are stored as files."""
        return f"{self.key}.png"


def slug(text: Any) -> str:
    """`text` as a file-name and id fragment (letters, digits, `_`, `-`)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", str(text))


def _filename(i: int, key: str) -> str:
    return f"{i:02d}-{slug(key)}.png"


def save_figures(figures: list[Figure], directory: str | Path) -> Path:
    """Write the figures as `<NN-key>.png` files plus `figures.json` (everything but the pixels)."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    index = []
    for i, fig in enumerate(figures):
        name = _filename(i, fig.key)
        (root / name).write_bytes(base64.b64decode(fig.png))
        index.append({**fig.model_dump(mode="json", exclude={"png"}), "file": name})
    (root / FIGURES_INDEX).write_text(json.dumps(index, indent=1, sort_keys=True))
    return root


def load_figures(read: Callable[[str], bytes] | str | Path) -> list[Figure]:
    """The figures `save_figures` wrote, read from a directory or through `read(name)` (e.g. a registry)."""
    if not callable(read):
        root = Path(read)
        read = lambda name: (root / name).read_bytes()  # noqa: E731 - a reader of that directory
    index = json.loads(read(FIGURES_INDEX))
    return [
        Figure(**{k: v for k, v in item.items() if k != "file"}, png=base64.b64encode(read(item["file"])).decode())
        for item in index
    ]
