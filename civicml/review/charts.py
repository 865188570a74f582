"""Geometry of the console's small SVG charts; the templates draw them beside a data table.

Every chart is a horizontal bar or interval chart on a 0-1 scale (rates, AUC, ratios), so a bar's
length means the same thing on every page. Values outside 0-1 are not drawn (the table has them).
"""

from __future__ import annotations

from typing import Any

LEFT, WIDTH, ROW, TOP = 230, 420, 30, 10
SVG_WIDTH = LEFT + WIDTH + 60


def _x(value: float) -> float:
    return round(LEFT + max(0.0, min(1.0, value)) * WIDTH, 1)


def bars(items: list[tuple[str, float | None]], title: str) -> dict[str, Any] | None:
    """Bars for `(label, value in 0..1)`; None values are listed as not shown. None when nothing to draw."""
    rows: list[dict[str, Any]] = []
    for label, value in items:
        if value is None or not 0.0 <= value <= 1.0:
            continue
        y = TOP + len(rows) * ROW
        rows.append({"label": label, "value": value, "y": y, "x2": _x(value), "ty": y + ROW / 2 + 5})
    return _chart(title, rows)


def intervals(items: list[dict[str, Any]], title: str) -> dict[str, Any] | None:
    """Point and 95% interval for each `{name, value, low, high}` whose numbers lie in 0..1."""
    rows: list[dict[str, Any]] = []
    for item in items:
        v, lo, hi = item.get("value"), item.get("low"), item.get("high")
        if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            continue
        y = TOP + len(rows) * ROW
        ci = (lo, hi) if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else None
        rows.append(
            {
                "label": item["name"],
                "value": v,
                "cx": _x(v),
                "x1": _x(ci[0]) if ci else None,
                "x2": _x(ci[1]) if ci else None,
                "cy": y + ROW / 2,
                "ty": y + ROW / 2 + 5,
            }
        )
    return _chart(title, rows)


def _chart(title: str, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chart's frame around its rows (None when there is nothing to draw)."""
    if not rows:
        return None
    return {
        "title": title,
        "rows": rows,
        "height": TOP * 2 + len(rows) * ROW + 20,
        "axis": _axis(len(rows)),
        "left": LEFT,
        "width": SVG_WIDTH,
    }


def _axis(n: int) -> dict[str, Any]:
    y = TOP + n * ROW
    return {"y": y, "ticks": [{"x": _x(t / 4), "label": f"{t / 4:.2f}"} for t in range(5)], "x1": LEFT, "x2": _x(1)}
