"""Step `train`: fit the final model on train, choose its threshold on valid, save it without pickle."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicml.config import RunConfig
from civicml.documents import TuningResult
from civicml.governance.audit import AuditLog
from civicml.steps._io import cfg_of, data_info, feature_spec, load_splits, model_hash
from civicml.storage.store import open_store

if TYPE_CHECKING:
    import pandas as pd


def train(config: RunConfig | str, data_dir: str, params_path: str | None, model_dir: str) -> dict[str, Any]:
    """Fit the final model on train (validation rows are used only for XGBoost's eval log).

    Returns:
        `model_sha256` (over the saved files, in order) and the parameters used.
    """
    from civicml.modeling.estimators import build_params

    cfg = cfg_of(config)
    tuned = TuningResult.read(params_path).best_params if params_path else {}
    params = build_params(cfg.model.family, cfg.model.params, tuned)
    audit = AuditLog(open_store(cfg.storage.uri))
    version = data_info(data_dir)["version"]
    if cfg.training.workers > 1:
        result = _fit_distributed(cfg, data_dir, params, model_dir, audit)
    else:
        result = _fit_here(cfg, data_dir, params, model_dir)
    audit.append("model_trained", {"version": version, "family": cfg.model.family, **result})
    return result


def _fit_here(cfg: RunConfig, data_dir: str, params: dict[str, Any], model_dir: str) -> dict[str, Any]:
    """The final fit in this process."""
    from civicml.modeling.estimators import fit_model
    from civicml.modeling.persistence import save_model

    splits = load_splits(data_dir, ("train", "valid"))
    spec = feature_spec(cfg, data_dir, splits["train"])
    model = fit_model(cfg.model.family, spec, params, splits["train"], cfg.model.seed, cfg.model.n_threads)
    choice = _choose_threshold(cfg, splits["valid"], model)
    files = save_model(model, model_dir)
    return {
        "model_sha256": model_hash(model_dir),
        "params": params,
        "files": [f.name for f in files],
        "threshold": choice,
    }


def _fit_distributed(
    cfg: RunConfig, data_dir: str, params: dict[str, Any], model_dir: str, audit: AuditLog
) -> dict[str, Any]:
    """The final fit on `training.workers` workers, then the threshold on the validation split."""
    from civicml.modeling.persistence import load_model, save_model

    workers = _train_distributed(cfg, data_dir, params, model_dir, audit)
    # The threshold is chosen on the validation split after the fit, whoever fitted.
    model = load_model(model_dir)
    choice = _choose_threshold(cfg, load_splits(data_dir, ("valid",))["valid"], model)
    if choice is not None:
        save_model(model, model_dir)
    result: dict[str, Any] = {"model_sha256": model_hash(model_dir), "params": params, "threshold": choice}
    result["files"] = sorted(p.name for p in Path(model_dir).iterdir())
    result["training"] = {"workers": cfg.training.workers, "backend": cfg.training.backend, "reports": workers}
    return result


def _choose_threshold(cfg: RunConfig, valid: pd.DataFrame, model: Any) -> dict[str, Any] | None:
    """Choose the decision threshold on the validation rows (`model.threshold`) and set it on the model."""
    if cfg.task != "binary_classification":
        return None
    from civicml.evaluation.threshold import choose_threshold

    rule = cfg.model.threshold
    choice = choose_threshold(
        model.spec.encode_target(valid[model.spec.target]), model.score(valid), rule.rule, rule.value
    )
    model.threshold = choice["threshold"]
    return choice


def _train_distributed(
    cfg: RunConfig, data_dir: str, params: dict[str, Any], model_dir: str, audit: AuditLog
) -> list[dict[str, Any]]:
    """The final fit on `training.workers` XGBoost workers, each reading only its shard.

    Returns:
        One report per worker (rows, peak RSS, seconds).

    Raises:
        DistributedTrainingError: a worker died, the TrainJob failed, or the data was sharded for another N.
    """
    from civicml.modeling.distributed import SHARD_DIR, DistributedTrainingError, ShardRef, WorkerJob

    info = data_info(data_dir)
    sharded = (info.get("training") or {}).get("workers", 1)
    if sharded != cfg.training.workers:
        raise DistributedTrainingError(
            f"training.workers is {cfg.training.workers} but validate-data cut the training split into {sharded} "
            "shard(s); run validate-data with the same config"
        )
    job = WorkerJob(
        spec=feature_spec(cfg, data_dir).to_dict(),
        params=params,
        seed=cfg.model.seed,
        n_threads=cfg.model.n_threads,
        shards=[ShardRef.model_validate(s) for s in info["training"]["shards"]],
        timeout_seconds=cfg.training.timeout_seconds,
        shard_root=str(Path(data_dir) / SHARD_DIR),
        output=str(model_dir),
    )
    try:
        if cfg.training.backend == "trainjob":
            from civicml.deploy.trainjob import run_trainjob

            return run_trainjob(cfg, info["version"], job, model_dir)
        from civicml.modeling.distributed import train_distributed

        return train_distributed(job, model_dir)
    except DistributedTrainingError as err:
        audit.append(
            "training_failed",
            {
                "version": info["version"],
                "workers": cfg.training.workers,
                "backend": cfg.training.backend,
                "error": str(err).splitlines()[0],
            },
        )
        raise
