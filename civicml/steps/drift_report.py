"""Step `monitor-report`: render the HTML drift report from the drift, performance and decision documents."""

from __future__ import annotations

from civicml.config import RunConfig
from civicml.documents import DriftReport
from civicml.steps._io import cfg_of, read_optional_json, write_text


def monitor_report(
    config: RunConfig | str, drift_path: str, performance_path: str | None, decision_path: str | None, report_path: str
) -> str:
    """Render the HTML drift report (per-feature charts with alt text and tables); returns its path."""
    from civicml.reporting.drift import render_drift_html

    cfg = cfg_of(config)
    drift = DriftReport.read(drift_path).as_dict()
    perf = read_optional_json(performance_path)
    decision = read_optional_json(decision_path)
    html_text = render_drift_html(
        drift, perf, decision, title=f"{cfg.card.title or cfg.name}: drift report", version=drift.get("version")
    )
    write_text(report_path, html_text)
    return report_path
