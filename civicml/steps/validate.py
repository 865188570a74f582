"""Step `validate-data`: load, check against the contract, drop PII, split, fingerprint and profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicml.config import RunConfig
from civicml.governance.audit import AuditLog
from civicml.steps._io import FEATURE_SPEC, cfg_of, champion_fingerprint, registry_of, write_json
from civicml.steps._prepare import PreparedTable, prepare_table
from civicml.storage.registry import Registry, new_version_id

if TYPE_CHECKING:
    import pandas as pd


def validate_data(
    config: RunConfig | str, data_dir: str, version: str = "", fingerprint_version: int | None = None
) -> dict[str, Any]:
    """Load, check against the contract, drop PII, split, fingerprint and profile the data.

    Args:
        config: Run config (object or JSON).
        data_dir: Output directory for train/valid/test Parquet, contract, profile and info.
        version: Model version id for this run; generated when empty.
        fingerprint_version: Data fingerprint definition to record (`civicml.data.fingerprint`);
            the current one by default. `civicml reproduce` passes a version's recorded one.

    Returns:
        Summary with `version`, `status` (`ok` or `no_new_data`), `fingerprint`, row counts
        and contract warnings.

    Raises:
        DataError: the data breaks the contract; nothing is written to the registry.
    """
    from civicml.data.errors import DataError
    from civicml.data.fingerprint import FINGERPRINT_VERSION
    from civicml.data.profile import build_profile

    cfg = cfg_of(config)
    version = version or new_version_id()
    registry = registry_of(cfg)
    audit = AuditLog(registry.store)
    fp_version = fingerprint_version or FINGERPRINT_VERSION
    try:
        table, splits, missing_pii, fp, same = _prepare_and_split(cfg, registry, fp_version)
    except DataError as err:
        audit.append("validation_failed", {"version": version, "source": cfg.data.source, "error": str(err)})
        raise
    # An inferred contract is stored by `register`, with the first committed version: a first run
    # that fails in any later step leaves no contract behind to hold the next batch to.
    out = Path(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in splits.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    training = _write_training_inputs(cfg, out, splits["train"], table.numeric, table.categorical, fp_version)
    write_json(out / "contract.json", [c.model_dump(mode="json") for c in table.contract])
    profile = build_profile(splits["train"], table.numeric, table.categorical, seed=cfg.split.seed)
    write_json(out / "profile.json", profile)
    status = "no_new_data" if same else "ok"
    info = _data_info(cfg, version, status, (fp, fp_version), splits, table, missing_pii, training)
    for warning in table.report.warnings:
        # stdout of the validate-data step: shown in the KFP UI's log of the step.
        print(f"data warning: {warning}", flush=True)
    write_json(out / "data_info.json", info)
    audit.append("data_validated", {k: info[k] for k in ("version", "status", "source", "fingerprint", "rows")})
    return info


def _prepare_and_split(
    cfg: RunConfig, registry: Registry, fp_version: int
) -> tuple[PreparedTable, dict[str, pd.DataFrame], list[str], str, bool]:
    """Load and prepare the table, fingerprint it, compare with the champion's data, split it.

    Returns:
        The prepared table without its rows (the splits hold them), the splits, the PII columns the
        config names but the data lacks, the fingerprint at `fp_version`, and whether the rows are
        the champion's (its fingerprint, computed at the champion's definition).

    Raises:
        DataError: the data breaks the contract or cannot be split.
    """
    import pyarrow as pa

    from civicml.data.contract import check_target
    from civicml.data.fingerprint import fingerprint
    from civicml.data.sources import load_table
    from civicml.data.split import split_frame

    df = load_table(cfg.data.source, cfg.data.demo)
    check_target(df, cfg.data, cfg.task)
    missing_pii = [c for c in cfg.data.pii_columns if c not in df.columns]
    table = prepare_table(cfg, registry, df)
    # The raw table (text per row, PII) is the largest object at 1M rows; nothing reads it again.
    # Arrow keeps freed buffers in its pool, where NumPy's allocations cannot reuse them: hand
    # them back, or the split and the Parquet writes stack their peak on top (~120 MB at 1M rows).
    del df
    pa.default_memory_pool().release_unused()
    fp = fingerprint(table.frame, fp_version)
    champion_fp, champion_fp_version = champion_fingerprint(registry)
    same = champion_fp == (fp if champion_fp_version == fp_version else fingerprint(table.frame, champion_fp_version))
    splits = split_frame(table.frame, cfg.data.target, cfg.split, stratify=cfg.task == "binary_classification")
    return table.without_rows(), splits, missing_pii, fp, same


def _data_info(
    cfg: RunConfig,
    version: str,
    status: str,
    fp: tuple[str, int],
    splits: dict[str, pd.DataFrame],
    table: PreparedTable,
    missing_pii: list[str],
    training: dict[str, Any],
) -> dict[str, Any]:
    """The `data_info.json` document every later step reads."""
    return {
        "version": version,
        "status": status,
        "source": cfg.data.source,
        "fingerprint": fp[0],
        "fingerprint_version": fp[1],
        "rows": {k: int(len(v)) for k, v in splits.items()},
        "numeric_features": table.numeric,
        "categorical_features": table.categorical,
        "sensitive_attributes": cfg.data.sensitive_attributes,
        "dropped_pii": [c for c in cfg.data.pii_columns if c not in missing_pii],
        "contract_origin": table.contract_origin,
        "warnings": table.report.warnings,
        "training": training,
    }


def _write_training_inputs(
    cfg: RunConfig, out: Path, train: pd.DataFrame, numeric: list[str], categorical: list[str], fp_version: int
) -> dict[str, Any]:
    """Fit the feature spec once on the whole training split; with N workers, cut N shards of it.

    Returns:
        `{"workers": N, "shards": [{key, sha256, rows, fingerprint}, ...]}` for data_info and the lineage.
    """
    from civicml.modeling.preprocessing import FeatureSpec

    spec = FeatureSpec.fit(train, cfg.data.target, cfg.task, numeric, categorical)
    # No sort_keys: the order of the categorical columns is the model's feature order.
    (out / FEATURE_SPEC).write_text(json.dumps(spec.to_dict(), indent=2, default=str))
    workers = cfg.training.workers
    if workers == 1:
        return {"workers": 1, "shards": []}
    from civicml.modeling.distributed import SHARD_DIR, write_shards

    refs = write_shards(train, out / SHARD_DIR, workers, fingerprint_version=fp_version)
    return {"workers": workers, "shards": [r.model_dump() for r in refs]}
