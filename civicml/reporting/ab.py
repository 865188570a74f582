"""The A/B report (champion against challenger) as HTML, Markdown and the lines the CLI prints.

The analysis is `civicml.monitoring.ab.ab_report`; this module only presents it: per-arm figures
as a chart with its table, where the labels came from, both tests and the recommendation.
"""

from __future__ import annotations

from typing import Any

from civicml.reporting.model import Table
from civicml.reporting.numbers import number, signed
from civicml.reporting.render import STATIC_DIR, render_report


def arms_table(report: dict[str, Any]) -> Table:
    """One row per arm: version, predictions, positive rate, labelled predictions, accuracy."""
    return Table(
        caption="A/B report",
        headers=["arm", "version", "predictions", "positive rate", "labelled", "accuracy"],
        rows=[
            [arm, m["version"], m["count"], m["positive_rate"], m["labelled"], m["accuracy"]]
            for arm, m in report["arms"].items()
        ],
        numeric={2, 3, 4, 5},
        digits=3,
    )


def labels_table(report: dict[str, Any]) -> Table | None:
    """Labels received and counted per source (None when no label arrived)."""
    labels = report["labels"]
    sources = sorted(set(labels["received_by_source"]) | set(labels["counted_by_source"]))
    if not sources:
        return None
    return Table(
        caption="Where the labels came from",
        headers=["source", "received", "counted"],
        rows=[[s, labels["received_by_source"].get(s, 0), labels["counted_by_source"].get(s, 0)] for s in sources],
        numeric={1, 2},
    )


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The labels, both tests and the recommendation, one sentence each."""
    labels, z, s = report["labels"], report["z_test"], report["msprt"]
    lines = [
        f"Labels: {labels['relabelled']} predictions labelled more than once ({labels['conflicting']} with "
        f"different outcomes; the first label counts), {labels['unmatched']} for unknown predictions."
    ]
    if z["z"] is not None:
        lines.append(
            f"Two-proportion z-test (fixed horizon): difference {signed(z['diff'])}, z = {number(z['z'], 3)}, "
            f"p = {number(z['p_value'])}."
        )
    lines.append(
        f"mSPRT (always valid, tau = {s['tau']}): Lambda = {number(s['lambda'], 3)}, p = {number(s['p_value'])}."
    )
    return lines


def render_ab(report: dict[str, Any], fmt: str = "html", title: str = "A/B test: champion and challenger") -> str:
    """The A/B report as a self-contained HTML page (`fmt="html"`) or Markdown (`"md"`)."""
    from civicml.reporting.monitor_plots import ab_arms

    return render_report(
        "ab.j2",
        fmt,
        title=title,
        report=report,
        figure=ab_arms(report),
        arms=arms_table(report),
        labels=labels_table(report),
        lines=summary_lines(report),
        css=(STATIC_DIR / "report.css").read_text(),
    )
