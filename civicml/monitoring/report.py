"""Drift report as one self-contained, accessible HTML page.

Each feature gets a bar chart of reference vs window share per bucket (matplotlib,
Agg backend, inlined as base64 PNG). A chart is never the only carrier of its
numbers: its alt text states the PSI, the band, the test result and the largest
change, and a real table with the same figures follows it.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 and v != 0 else f"{v:.{digits}f}"
    return str(v)


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _table(headers: list[str], rows: list[list[Any]], caption: str, row_header: bool = True) -> str:
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            text = html.escape(v if isinstance(v, str) else _fmt(v))
            cells.append(f'<th scope="row">{text}</th>' if i == 0 and row_header else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _largest_change(f: dict[str, Any]) -> tuple[str, float, float]:
    b = f["buckets"]
    i = max(range(len(b["labels"])), key=lambda k: abs(b["current"][k] - b["reference"][k]))
    return b["labels"][i], b["reference"][i], b["current"][i]


def feature_alt_text(f: dict[str, Any]) -> str:
    """Alt text with the numbers a sighted reader gets from the chart."""
    label, ref, cur = _largest_change(f)
    test = {"ks": "Kolmogorov-Smirnov", "ks+missing": "Kolmogorov-Smirnov and missing-rate"}.get(
        f.get("test"), "chi-square"
    )
    p = f.get("p_value")
    return (
        f"Bar chart of {f['feature']}: share of rows per bucket, reference versus window. "
        f"PSI {f['psi']:.3f} ({f['psi_band']} band); {test} p-value {_fmt(p, 3)}; "
        f"{'drifted' if f['drifted'] else 'not drifted'}. Largest change in bucket '{label}': "
        f"{_pct(ref)} in the reference, {_pct(cur)} in the window."
    )


def feature_plot_png(f: dict[str, Any]) -> bytes:
    """A grouped bar chart (reference vs window share per bucket) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    b = f["buckets"]
    x = np.arange(len(b["labels"]))
    # Fixed margins instead of tight_layout: it draws the figure twice, doubling the cost per chart.
    fig = plt.figure(figsize=(7, 3.2), dpi=72)
    fig.subplots_adjust(left=0.09, right=0.99, top=0.9, bottom=0.33)
    ax = fig.add_subplot()
    try:
        # Colour-blind-safe pair (Okabe-Ito) plus hatching, so the bars differ without colour.
        ax.bar(x - 0.2, b["reference"], width=0.4, label="reference (training)", color="#0072B2")
        ax.bar(
            x + 0.2,
            b["current"],
            width=0.4,
            label="window",
            color="#E69F00",
            hatch="//",
            edgecolor="black",
            linewidth=0.3,
        )
        ax.set_xticks(x)
        ax.set_xticklabels(b["labels"], rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("share of rows")
        ax.set_title(f"{f['feature']}: PSI {f['psi']:.3f} ({f['psi_band']})", fontsize=10)
        ax.legend(fontsize=8)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def render_drift_html(
    drift: dict[str, Any],
    performance: dict[str, Any] | None = None,
    decision: dict[str, Any] | None = None,
    title: str = "Drift report",
    version: str | None = None,
) -> str:
    """The whole report: summary, per-feature table, per-feature charts with tables, performance, decision."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    s = drift["summary"]
    meta = [
        ["model version", version or "—"],
        ["window source", drift.get("source") or "—"],
        ["window rows", drift["window_rows"]],
        ["reference rows", drift["reference_rows"]],
        ["features compared", s["n_features"]],
        ["features drifted", f"{s['n_drifted']} ({_pct(s['drift_share'])}): {', '.join(s['drifted']) or 'none'}"],
        ["largest PSI", f"{_fmt(s['max_psi'], 3)} on {s['max_psi_feature'] or '—'}"],
        ["missing features", ", ".join(s["missing_features"]) or "none"],
    ]
    parts.append(_table(["item", "value"], meta, "Summary"))
    if drift.get("messages"):
        parts.append(
            '<section aria-label="Warnings"><h2>Warnings</h2><ul>'
            + "".join(f"<li>{html.escape(m)}</li>" for m in drift["messages"])
            + "</ul></section>"
        )
    if decision:
        parts.append(
            f"<h2>Retrain decision: {html.escape(decision['decision'])}</h2><p>{html.escape(decision['reason'])}</p>"
        )
        parts.append(
            _table(
                ["rule", "kind", "threshold", "measured", "fired", "note"],
                [
                    [r["rule"], r["kind"], str(r["threshold"]), str(r["value"]), r["fired"], r["note"]]
                    for r in decision["rules"]
                ],
                "Retrain policy rules",
            )
        )
    th = drift.get("thresholds", {})
    rows = [
        [
            f["feature"],
            f.get("kind") or "—",
            f["status"],
            f.get("psi"),
            f.get("psi_band") or "—",
            f.get("test") or "—",
            f.get("statistic"),
            f.get("p_value"),
            f["drifted"],
        ]
        for f in drift["features"].values()
    ]
    parts.append(
        _table(
            ["feature", "kind", "status", "PSI", "PSI band", "test", "statistic", "p-value", "drifted"],
            rows,
            f"Drift per feature (drifted = p-value < {th.get('p_value')} and PSI >= {th.get('feature_psi')}; "
            f"PSI bands: < {th.get('psi_moderate')} none, < {th.get('psi_major')} moderate, else major)",
        )
    )
    if performance:
        parts.append("<h2>Live performance</h2>")
        if performance.get("status") != "ok":
            parts.append(f"<p>{html.escape(performance.get('message', 'not measured'))}</p>")
        else:
            ci = performance.get("confidence_intervals", {})
            prow = [
                [
                    m,
                    v,
                    ci.get(m, {}).get("low"),
                    ci.get(m, {}).get("high"),
                    performance["reference"].get(m),
                    performance["drop"].get(m),
                ]
                for m, v in performance["metrics"].items()
            ]
            parts.append(
                _table(
                    ["metric", "live", "95% CI low", "95% CI high", "test", "drop (positive = worse)"],
                    prow,
                    f"Live metrics over {performance['rows']} labelled predictions (watched: {performance['metric']})",
                )
            )
    parts.append("<h2>Feature distributions</h2>")
    for f in drift["features"].values():
        if f["status"] != "ok":
            continue
        png = base64.b64encode(feature_plot_png(f)).decode()
        alt = feature_alt_text(f)
        b = f["buckets"]
        brows = [[lab, _pct(r), _pct(c), _pct(c - r)] for lab, r, c in zip(b["labels"], b["reference"], b["current"])]
        parts.append(
            f'<section aria-labelledby="f-{html.escape(f["feature"])}"><h3 id="f-{html.escape(f["feature"])}">'
            f"{html.escape(f['feature'])}</h3>"
            f'<img src="data:image/png;base64,{png}" alt="{html.escape(alt)}" width="560" height="256">'
            + _table(
                ["bucket", "reference share", "window share", "change"],
                brows,
                f"{f['feature']}: share of rows per bucket (PSI {f['psi']:.3f}, {f['psi_band']})",
            )
            + "</section>"
        )
    style = (
        "body{font-family:sans-serif;max-width:62em;margin:auto;line-height:1.4;color:#111}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #555;padding:.25em .5em}"
        "caption{text-align:left;font-weight:bold;margin-bottom:.3em}img{max-width:100%;height:auto}"
        # Wide tables scroll inside the page instead of widening it past the window (1280 px and less);
        # long feature names and values wrap.
        "table{display:block;max-width:100%;overflow-x:auto}td,th{overflow-wrap:anywhere}"
        "pre,code{white-space:pre-wrap;overflow-wrap:anywhere}"
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head><body><main>{''.join(parts)}"
        f"</main></body></html>"
    )
