"""The monitoring charts: one feature's drift (reference against window) and the A/B arms.

Drawn on the card's canvas and conventions (`civicml.reporting.plots`): PNG, alt text with the key
numbers, the table of the numbers beside it, Okabe-Ito colours with hatches as well as colour.
"""

from __future__ import annotations

from typing import Any

from civicml.reporting.model import Figure, Table
from civicml.reporting.numbers import number, percent
from civicml.reporting.plots import BLUE, ORANGE, _canvas, _grouped_bars, _png


def drift_alt(f: dict[str, Any]) -> str:
    """Alt text of one feature's drift chart: PSI, band, test result and the largest change."""
    b = f["buckets"]
    i = max(range(len(b["labels"])), key=lambda k: abs(b["current"][k] - b["reference"][k]))
    test = {"ks": "Kolmogorov-Smirnov", "ks+missing": "Kolmogorov-Smirnov and missing-rate"}.get(
        f.get("test", ""), "chi-square"
    )
    return (
        f"Bar chart of {f['feature']}: share of rows per bucket, reference versus window. "
        f"PSI {f['psi']:.3f} ({f['psi_band']} band); {test} p-value {number(f.get('p_value'), 3)}; "
        f"{'drifted' if f['drifted'] else 'not drifted'}. Largest change in bucket '{b['labels'][i]}': "
        f"{percent(b['reference'][i])} in the reference, {percent(b['current'][i])} in the window."
    )


def drift_feature(f: dict[str, Any]) -> Figure:
    """Reference against window share per bucket of one feature (grouped bars)."""
    b = f["buckets"]
    x = list(range(len(b["labels"])))
    fig, ax = _canvas(7, 3.2, dpi=72)
    ax.grid(False)
    fig.subplots_adjust(left=0.09, right=0.99, top=0.9, bottom=0.33)
    ax.bar([i - 0.2 for i in x], b["reference"], width=0.4, label="reference (training)", color=BLUE)
    ax.bar(
        [i + 0.2 for i in x],
        b["current"],
        width=0.4,
        label="window",
        color=ORANGE,
        hatch="//",
        edgecolor="black",
        linewidth=0.3,
    )
    ax.set_xticks(x, b["labels"], rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("share of rows")
    ax.set_title(f"{f['feature']}: PSI {f['psi']:.3f} ({f['psi_band']})", fontsize=10)
    ax.legend(fontsize=8)
    table = Table(
        caption=f"{f['feature']}: share of rows per bucket (PSI {f['psi']:.3f}, {f['psi_band']})",
        headers=["bucket", "reference share", "window share", "change"],
        rows=[
            [lab, percent(r), percent(c), percent(c - r)]
            for lab, r, c in zip(b["labels"], b["reference"], b["current"])
        ],
        numeric={1, 2, 3},
    )
    png = _png(fig, tight=False)
    return Figure(
        key=f"drift-{f['feature']}", title=f["feature"], alt=drift_alt(f), png=png, table=table, width=560, height=256
    )


def ab_arms(report: dict[str, Any]) -> Figure | None:
    """Accuracy and positive-prediction rate of champion and challenger (bars)."""
    arms = {a: m for a, m in report["arms"].items() if m.get("version")}
    if not arms:
        return None
    fig, ax = _canvas(6.0, 3.6)
    names = list(arms)
    series = [
        ("accuracy on labelled predictions", BLUE, "", [arms[a]["accuracy"] for a in names]),
        ("positive rate", ORANGE, "//", [arms[a]["positive_rate"] for a in names]),
    ]
    labels = [f"{a}\n{arms[a]['version']} (n={arms[a]['labelled']})" for a in names]
    _grouped_bars(ax, labels, series, lambda v: "none" if v is None else f"{v:.3f}")
    ax.set(ylabel="rate", title="Champion and challenger", ylim=(0, 1.1))
    ax.legend(loc="upper right", fontsize=8)
    parts = "; ".join(
        f"{a} {arms[a]['version']}: accuracy {number(arms[a]['accuracy'], 3)} on {arms[a]['labelled']} labelled "
        f"predictions, positive rate {number(arms[a]['positive_rate'], 3)}"
        for a in names
    )
    alt = f"Bar chart of accuracy and positive rate per arm. {parts}."
    table = Table(
        caption="Per arm: predictions, labelled predictions, accuracy and positive rate",
        headers=["arm", "version", "predictions", "labelled", "accuracy", "positive rate"],
        rows=[[a, m["version"], m["count"], m["labelled"], m["accuracy"], m["positive_rate"]] for a, m in arms.items()],
        numeric={2, 3, 4, 5},
        digits=3,
    )
    return Figure(key="ab-arms", title="Champion and challenger", alt=alt, png=_png(fig), table=table)
