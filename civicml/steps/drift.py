"""Step `monitor-drift`: measure a window's drift against a version's reference profile, and live performance."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from civicml.config import RunConfig
from civicml.documents import DriftReport
from civicml.steps._io import cfg_of, champion_fingerprint, registry_of, write_json
from civicml.steps._prepare import batch_fingerprint
from civicml.storage.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

SERVING_LOG = "serving-log"


def _monitored_version(registry: Registry, version: str) -> str:
    from civicml.storage.registry import RegistryError

    if version:
        return version
    champion = registry.get_alias("champion")
    if not champion:
        raise RegistryError(
            "no version given and no champion yet: train and deploy a model first (civicml run), or pass --version"
        )
    return champion


def monitor_drift(
    config: RunConfig | str,
    version: str,
    drift_path: str,
    performance_path: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Measure drift of a window against a version's reference profile, and its live performance.

    Args:
        config: Run config.
        version: The model version to compare with; "" means the champion.
        drift_path: Where to write the drift document (JSON).
        performance_path: Where to write the live-performance document (JSON).
        source: The window: `serving-log` for the model server's prediction log (last
            `monitoring.window_days`), a data source (path, s3://, demo:...) for a new batch;
            None/"" means `monitoring.window_source`, else `data.source`.

    Returns:
        The drift document, with `version`, `source`, `window_kind`, `fingerprint` and
        `champion_fingerprint` added.

    Raises:
        RegistryError: no such version (or no champion when `version` is empty).
    """
    from civicml.monitoring.drift import compute_drift

    cfg = cfg_of(config)
    registry = registry_of(cfg)
    version = _monitored_version(registry, version)
    manifest = registry.manifest(version)
    profile = json.loads(registry.read_artifact(version, "data/profile.json"))
    source = source or cfg.monitoring.window_source or cfg.data.source
    predictions: list[dict[str, Any]] | None
    new_fp: str | None
    if source == SERVING_LOG:
        window, predictions, messages = _serving_log_window(cfg, registry, version)
        kind, new_fp = "serving_log", None
    else:
        window, predictions, messages, new_fp = _batch_window(cfg, registry, source)
        kind = "data_batch"
    drift = compute_drift(profile, window, cfg.monitoring, source=source)
    drift["messages"] = messages + drift["messages"]
    drift.update(
        version=version, window_kind=kind, fingerprint=new_fp, champion_fingerprint=champion_fingerprint(registry)[0]
    )
    drift = DriftReport.stamp(drift, where="the drift report")
    write_json(drift_path, drift)
    if performance_path:
        perf = _live_performance(cfg, registry, version, manifest, predictions)
        write_json(performance_path, perf)
    return drift


def _serving_log_window(
    cfg: RunConfig, registry: Registry, version: str
) -> tuple[pd.DataFrame, list[dict[str, Any]], list[str]]:
    """The rows `version` served in the window, the logged predictions, and what the reader should know."""
    from civicml.monitoring.drift import read_log_records, served_by, window_from_predictions

    messages: list[str] = []
    predictions, warn = read_log_records(registry.store, "predictions", cfg.monitoring.window_days)
    messages += warn
    if not predictions:
        messages.append(
            "the serving log has no predictions in the window yet (logs/predictions/ in "
            f"{registry.store.describe()}); is the model server running and logging?"
        )
    window = window_from_predictions(predictions, version=version)
    others = {v: n for v, n in served_by(predictions).items() if v != version}
    if others:
        messages.append(
            f"measured only the {len(window)} logged predictions served by {version}; "
            f"{sum(others.values())} in the window were served by other versions ({others}) and are left out"
        )
    if len(window) < cfg.monitoring.min_new_rows:
        messages.append(
            f"too little traffic to judge drift: {len(window)} predictions served by {version} in the window, "
            f"monitoring.min_new_rows is {cfg.monitoring.min_new_rows}; drift will not trigger retraining"
        )
    return window, predictions, messages


def _batch_window(cfg: RunConfig, registry: Registry, source: str) -> tuple[pd.DataFrame, None, list[str], str | None]:
    """A new data batch as the window, with the fingerprint a training run on it would record."""
    from civicml.data.sources import load_table

    messages: list[str] = []
    window = load_table(source, cfg.data.demo)
    # At the champion's fingerprint definition: the trigger compares the two.
    new_fp = batch_fingerprint(cfg, registry, window, version=champion_fingerprint(registry)[1])
    if new_fp is None:
        messages.append(
            f"the batch {source} breaks the data contract; a training run on it would stop at validate-data"
        )
    return window, None, messages, new_fp


def _live_performance(
    cfg: RunConfig,
    registry: Registry,
    version: str,
    manifest: dict[str, Any],
    predictions: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """Performance on the served predictions that have feedback (labels), against the evaluated metrics."""
    from civicml.monitoring.drift import read_log_records
    from civicml.monitoring.performance import join_feedback, live_performance

    if predictions is None:
        predictions, _ = read_log_records(registry.store, "predictions", cfg.monitoring.window_days)
    feedback, warn_fb = read_log_records(registry.store, "feedback", cfg.monitoring.window_days)
    joined = join_feedback(predictions, feedback, version=version)
    perf = live_performance(joined, cfg.task, manifest.get("metrics", {}), cfg.monitoring, seed=cfg.split.seed)
    perf["version"] = version
    perf["log_warnings"] = warn_fb
    return perf
