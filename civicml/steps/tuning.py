"""Step `tune`: search hyperparameters on train/valid with the configured backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from civicml.config import RunConfig
from civicml.documents import TuningResult
from civicml.governance.audit import AuditLog
from civicml.steps._io import cfg_of, data_info, feature_spec, load_splits, write_json, write_text
from civicml.storage.store import open_store


def tune(
    config: RunConfig | str,
    data_dir: str,
    params_path: str,
    trials_html_path: str | None = None,
    on_trial: Callable[[int, int], None] | None = None,
    trials_md_path: str | None = None,
) -> dict[str, Any]:
    """Search hyperparameters on train/valid with the configured backend; write the best params.

    With `tuning.backend: katib` the train/valid split (and the config) is first uploaded
    to `staging/<version>/tuning-data/` in the store, where every trial Job reads it.

    Args:
        config: Run config (object or JSON).
        data_dir: Directory written by `validate_data`.
        params_path: Where the result JSON goes (`best_params` is what `train` uses).
        trials_html_path: Optional HTML trials table (KFP UI artifact).
        on_trial: Progress callback `(done, total)` (Optuna only).
        trials_md_path: Optional Markdown trials table.

    Returns:
        The tuning result: `best_params`, `best_value`, the trials table.
    """
    cfg = cfg_of(config)
    result = TuningResult.stamp(_search(cfg, data_dir, on_trial), where="the tuning result")
    write_json(params_path, result)
    AuditLog(open_store(cfg.storage.uri)).append("tuning_done", _audit_payload(data_info(data_dir)["version"], result))
    from civicml.reporting.trials import trials_html, trials_markdown

    for path, render in ((trials_html_path, trials_html), (trials_md_path, trials_markdown)):
        if path:
            write_text(path, render(result))
    return result


def _search(cfg: RunConfig, data_dir: str, on_trial: Callable[[int, int], None] | None) -> dict[str, Any]:
    """Run the configured backend: Katib trials on the cluster, or Optuna in this process."""
    if cfg.tuning.backend == "katib":
        from civicml.tuning.katib_backend import require_shared_store, run_katib
        from civicml.tuning.trial import upload_tuning_data

        version = data_info(data_dir)["version"]
        store = open_store(cfg.storage.uri)
        require_shared_store(store.uri)
        upload_tuning_data(cfg, data_dir, version, store)
        return run_katib(cfg, version)
    from civicml.tuning.optuna_backend import run_optuna

    splits = load_splits(data_dir, ("train", "valid"))
    spec = feature_spec(cfg, data_dir, splits["train"])
    return run_optuna(cfg, spec, splits["train"], splits["valid"], on_trial=on_trial)


def _audit_payload(version: str, result: dict[str, Any]) -> dict[str, Any]:
    """The `tuning_done` audit record: the search, not every trial."""
    return {
        "version": version,
        "backend": result.get("backend"),
        "algorithm": result.get("algorithm"),
        "trials": len(result.get("trials", [])),
        "objective_metric": result.get("objective_metric"),
        "best_value": result.get("best_value"),
        "best_params": result.get("best_params"),
    }
