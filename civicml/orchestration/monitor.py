"""`civicml monitor` outside a pipeline: the drift, trigger and report steps on one window, stored.

The same `civicml.steps` functions the monitoring pipeline runs, in a temporary folder; their
documents and the report are then kept under `monitoring/<time>-<version>/` in the store, and
the decision can start a retraining (`civicml.steps.retrain`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from civicml import steps
from civicml.config import RunConfig

OUTPUTS = ("drift.json", "performance.json", "decision.json", "report.html")


class RetrainFailed(RuntimeError):
    """The decision said retrain and the retraining did not start or failed (its outputs are stored)."""


def run_monitoring(
    cfg: RunConfig,
    version: str,
    source: str,
    retrain: bool = False,
    announce: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure drift and live performance of a window, decide, store it all; retrain when asked and decided.

    Args:
        cfg: Run config.
        version: The version to compare with; "" means the champion.
        source: The window: a data source, `steps.SERVING_LOG`, or "" for the configured one.
        retrain: Start the training pipeline when the decision is `retrain`.
        announce: Told one line before a retraining starts.

    Returns:
        The summary `monitor_summary` builds, with `retrain` (what was started) when it was.

    Raises:
        RetrainFailed: the retraining failed; the message says where the decision is stored.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="civicml-monitor-") as tmp:
        drift_path, perf_path, decision_path, report_path = (str(Path(tmp) / name) for name in OUTPUTS)
        drift = steps.monitor_drift(cfg, version, drift_path, perf_path, source=source)
        decision = steps.monitor_trigger(cfg, drift_path, perf_path, decision_path)
        steps.monitor_report(cfg, drift_path, perf_path, decision_path, report_path)
        prefix, report_at = _store_outputs(cfg, Path(tmp), f"monitoring/{stamp}-{drift['version']}")
        perf = json.loads(Path(perf_path).read_text())
        summary = monitor_summary(drift, perf, decision, report_at)
        if retrain and decision["decision"] == "retrain":
            if announce is not None:
                window = drift["source"] if drift["window_kind"] == "data_batch" else cfg.data.source
                announce(f"retraining on {window} …")
            try:
                summary["retrain"] = steps.monitor_retrain(cfg, drift_path)
            except RuntimeError as err:
                raise RetrainFailed(f"{err}; the decision and report are stored under {prefix}") from err
    return summary


def _store_outputs(cfg: RunConfig, folder: Path, prefix: str) -> tuple[str, str]:
    """Keep the four outputs under `prefix` in the store: (prefix, where the report can be opened)."""
    from civicml.storage.store import open_store

    store = open_store(cfg.storage.uri)
    for name in OUTPUTS:
        store.put_file(f"{prefix}/{name}", folder / name)
    report_at = store.local_path(f"{prefix}/report.html") or f"{store.describe()}/{prefix}/report.html"
    return prefix, str(report_at)


def monitor_summary(
    drift: dict[str, Any], perf: dict[str, Any], decision: dict[str, Any], report_at: str
) -> dict[str, Any]:
    """The monitor's answer in one document: drift per feature, live performance, the decision."""
    return {
        "version": drift["version"],
        "source": drift["source"],
        "window_rows": drift["window_rows"],
        "drift": {
            name: {
                "psi": f.get("psi"),
                "band": f.get("psi_band"),
                "p_value": f.get("p_value"),
                "drifted": f["drifted"],
                "status": f["status"],
            }
            for name, f in drift["features"].items()
        },
        "drift_share": drift["summary"]["drift_share"],
        "drifted": drift["summary"]["drifted"],
        "performance": {
            "status": perf["status"],
            "rows": perf["rows"],
            "metric": perf["metric"],
            "live": perf["metrics"].get(perf["metric"]),
            "drop": perf.get("watched_drop"),
        },
        "decision": decision["decision"],
        "reason": decision["reason"],
        "messages": drift["messages"],
        "report": report_at,
    }
