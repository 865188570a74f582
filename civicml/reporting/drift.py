"""The drift report: one self-contained, accessible HTML page (Jinja2 template `drift.j2`).

Each compared feature gets a bar chart of reference against window share per bucket
(`civicml.reporting.monitor_plots.drift_feature`). A chart is never the only carrier of its numbers: its
alt text states the PSI, the band, the test result and the largest change, and the table of the
same figures is beside it.
"""

from __future__ import annotations

from typing import Any

from civicml.reporting.model import Table
from civicml.reporting.numbers import number, percent
from civicml.reporting.render import STATIC_DIR, render_report


def _summary(drift: dict[str, Any], version: str | None) -> Table:
    s = drift["summary"]
    return Table(
        caption="Summary",
        headers=["item", "value"],
        rows=[
            ["model version", version or "—"],
            ["window source", drift.get("source") or "—"],
            ["window rows", drift["window_rows"]],
            ["reference rows", drift["reference_rows"]],
            ["features compared", s["n_features"]],
            [
                "features drifted",
                f"{s['n_drifted']} ({percent(s['drift_share'])}): {', '.join(s['drifted']) or 'none'}",
            ],
            ["largest PSI", f"{number(s['max_psi'], 3)} on {s['max_psi_feature'] or '—'}"],
            ["missing features", ", ".join(s["missing_features"]) or "none"],
        ],
    )


def _features(drift: dict[str, Any]) -> Table:
    th = drift.get("thresholds", {})
    keys = ("feature", "kind", "status", "psi", "psi_band", "test", "statistic", "p_value", "drifted")
    text = {"kind", "psi_band", "test"}  # absent means "—" for these as for numbers
    return Table(
        caption=(
            f"Drift per feature (drifted = p-value < {th.get('p_value')} and PSI >= {th.get('feature_psi')}; "
            f"PSI bands: < {th.get('psi_moderate')} none, < {th.get('psi_major')} moderate, else major)"
        ),
        headers=["feature", "kind", "status", "PSI", "PSI band", "test", "statistic", "p-value", "drifted"],
        rows=[[(f.get(k) or None) if k in text else f.get(k) for k in keys] for f in drift["features"].values()],
    )


def _rules(decision: dict[str, Any]) -> Table:
    return Table(
        caption="Retrain policy rules",
        headers=["rule", "kind", "threshold", "measured", "fired", "note"],
        rows=[
            [r["rule"], r["kind"], str(r["threshold"]), str(r["value"]), r["fired"], r["note"]]
            for r in decision["rules"]
        ],
    )


def _performance(performance: dict[str, Any]) -> Table | None:
    if performance.get("status") != "ok":
        return None
    ci = performance.get("confidence_intervals", {})
    return Table(
        caption=f"Live metrics over {performance['rows']} labelled predictions (watched: {performance['metric']})",
        headers=["metric", "live", "95% CI low", "95% CI high", "test", "drop (positive = worse)"],
        rows=[
            [
                m,
                v,
                ci.get(m, {}).get("low"),
                ci.get(m, {}).get("high"),
                performance["reference"].get(m),
                performance["drop"].get(m),
            ]
            for m, v in performance["metrics"].items()
        ],
    )


def render_drift_html(
    drift: dict[str, Any],
    performance: dict[str, Any] | None = None,
    decision: dict[str, Any] | None = None,
    title: str = "Drift report",
    version: str | None = None,
) -> str:
    """The whole report: summary, per-feature table, per-feature charts with tables, performance, decision.

    Args:
        drift: The drift document (`civicml.monitoring.drift.compute_drift`).
        performance: Live performance (`civicml.monitoring.performance`), when measured.
        decision: The retrain decision with its rules, when taken.
        title: Page title.
        version: The model version the window was compared against.

    Returns:
        The HTML page.
    """
    from civicml.reporting.monitor_plots import drift_feature

    figures = [drift_feature(f) for f in drift["features"].values() if f["status"] == "ok"]
    return render_report(
        "drift.j2",
        "html",
        title=title,
        summary=_summary(drift, version),
        messages=drift.get("messages") or [],
        decision=decision,
        rules=_rules(decision) if decision else None,
        features=_features(drift),
        performance=performance,
        performance_table=_performance(performance) if performance else None,
        figures=figures,
        css=(STATIC_DIR / "report.css").read_text(),
    )
