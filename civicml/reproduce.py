"""`civicml reproduce VERSION`: retrain a registered version from its lineage and compare model hashes.

The run uses the version's recorded config, data contract, tuned parameters, seeds and
thread count, and the same data source, through the same `civicml.steps` functions the
pipeline runs. It works in a temporary directory against a scratch store, so it never
creates a registry version; the only write to the real registry is one audit event,
`reproduce_checked`.

Tuning is not re-run: the tuned parameters recorded with the version (`tuning.json`) are
used, because what is being checked is that the same inputs give the same model bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from civicml import steps
from civicml.config import ColumnSpec, ConfigError, RunConfig, parse_config
from civicml.data.fingerprint import recorded_version
from civicml.governance.audit import AuditLog
from civicml.provenance import code_revision, image, library_versions
from civicml.storage.registry import IntegrityError, Registry, RegistryError, dict_diff


@contextlib.contextmanager
def _scratch_store(path: Path) -> Iterator[None]:
    # The steps open their store from CIVICML_STORE_URI before the config, so pointing it at a
    # scratch directory keeps the retraining's audit records and contract lookups out of the real
    # registry. Data read from s3:// uses the S3 settings, not this variable, and is unaffected.
    saved = os.environ.get("CIVICML_STORE_URI")
    os.environ["CIVICML_STORE_URI"] = str(path)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CIVICML_STORE_URI", None)
        else:
            os.environ["CIVICML_STORE_URI"] = saved


def recorded_config(manifest: dict[str, Any]) -> RunConfig:
    """The run config recorded in a manifest's lineage.

    Raises:
        RegistryError: the manifest has no lineage, or its config no longer validates.
    """
    lineage = manifest.get("lineage") or {}
    if "config" not in lineage:
        raise RegistryError(
            f"version {manifest['version']} has no recorded config in its lineage; it cannot be reproduced"
        )
    try:
        return parse_config(lineage["config"], where=f"lineage of {manifest['version']}")
    except ConfigError as err:
        raise RegistryError(
            f"{err}\nthe recorded config no longer validates with this code; check out code revision "
            f"{lineage.get('code_revision', 'unknown')} to reproduce version {manifest['version']}"
        ) from None


def _retrain(registry: Registry, man: dict[str, Any], cfg: RunConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate and train as the version was, in a scratch directory and store: (data info, train result)."""
    version = man["version"]
    train_cfg = cfg.model_copy(deep=True)
    # The contract the version was validated against, not whatever the project stores today.
    contract = json.loads(registry.read_artifact(version, "data/contract.json"))
    train_cfg.data.contract = [ColumnSpec.model_validate(c) for c in contract]
    with tempfile.TemporaryDirectory(prefix="civicml-reproduce-") as tmp:
        work = Path(tmp)
        params_path = None
        if "tuning.json" in man["artifacts"]:
            params_path = work / "tuning.json"
            params_path.write_bytes(registry.read_artifact(version, "tuning.json"))
        with _scratch_store(work / "scratch-store"):
            # At the version's recorded fingerprint definition, so its fingerprints compare.
            info = steps.validate_data(
                train_cfg,
                str(work / "data"),
                version=version,
                fingerprint_version=recorded_version(man.get("lineage") or {}),
            )
            trained = steps.train(
                train_cfg, str(work / "data"), str(params_path) if params_path else None, str(work / "model")
            )
    return info, trained


def _verdict(identical: bool, differences: list[dict[str, Any]]) -> str:
    """One line for the reader: identical, or different and the likely why."""
    if identical:
        return "identical: retraining from the recorded lineage gives the same model bytes"
    if differences:
        return "different: recorded input(s) differ now: " + ", ".join(dict.fromkeys(d["input"] for d in differences))
    return (
        "different, although no recorded input differs: training is not deterministic here "
        "(check model.n_threads is fixed and the CPU/instruction set is the same)"
    )


def reproduce(registry: Registry, version: str, actor: str | None = None) -> dict[str, Any]:
    """Retrain `version` from its lineage and report whether the model hash is identical.

    Args:
        registry: The registry holding the version.
        version: Version id or alias (`champion`, `challenger`).
        actor: Who asked, for the audit record (default: `CIVICML_ACTOR` or the OS user).

    Returns:
        `{version, identical, recorded_model_sha256, reproduced_model_sha256, differences, verdict}`;
        `differences` lists every recorded input that differs now (`{input, key, recorded, current}`),
        whether or not the hash matched.

    Raises:
        RegistryError: unknown version, no lineage, or an artifact fails its integrity check.
        DataError: the recorded data source can no longer be read or breaks the recorded contract.
    """
    man = registry.manifest(version)
    version = man["version"]
    # A retrain can only vouch for a version whose stored files are the ones that were committed.
    problems = registry.verify(version)
    if problems:
        raise IntegrityError(
            f"version {version} fails verification, so it cannot be reproduced: " + "; ".join(problems)
        )
    cfg = recorded_config(man)
    info, trained = _retrain(registry, man, cfg)
    recorded_hash = man.get("model_sha256")
    new_hash = trained["model_sha256"]
    identical = recorded_hash == new_hash
    differences = _differences(man.get("lineage") or {}, cfg, info)
    verdict = _verdict(identical, differences)
    result = {
        "version": version,
        "identical": identical,
        "recorded_model_sha256": recorded_hash,
        "reproduced_model_sha256": new_hash,
        "differences": differences,
        "verdict": verdict,
    }
    AuditLog(registry.store).append(
        "reproduce_checked",
        {k: result[k] for k in ("version", "identical", "recorded_model_sha256", "reproduced_model_sha256")}
        | {"differs": sorted({d["input"] for d in differences})},
        actor=actor,
    )
    return result


def _differences(lineage: dict[str, Any], cfg: RunConfig, info: dict[str, Any]) -> list[dict[str, Any]]:
    """Recorded inputs that differ in this environment."""
    out: list[dict[str, Any]] = []
    if lineage.get("data_fingerprint") != info["fingerprint"]:
        out.append(
            {
                "input": "data fingerprint",
                "key": lineage.get("data_source", ""),
                "recorded": lineage.get("data_fingerprint"),
                "current": info["fingerprint"],
            }
        )
    # With training.workers > 1 each worker trained on one shard: a shard that differs is named.
    recorded_shards = (lineage.get("training") or {}).get("shards") or []
    current_shards = (info.get("training") or {}).get("shards") or []
    if [s.get("fingerprint") for s in recorded_shards] != [s.get("fingerprint") for s in current_shards]:
        out.append(
            {
                "input": "training shards",
                "key": f"{len(recorded_shards)} recorded, {len(current_shards)} now",
                "recorded": [s.get("fingerprint") for s in recorded_shards],
                "current": [s.get("fingerprint") for s in current_shards],
            }
        )
    for row in dict_diff(lineage.get("rows", {}), info["rows"]):
        out.append({"input": "data rows", "key": row["key"], "recorded": row["a"], "current": row["b"]})
    for row in dict_diff(lineage.get("libraries", {}), library_versions()):
        out.append({"input": "library versions", "key": row["key"], "recorded": row["a"], "current": row["b"]})
    rev = code_revision()
    if lineage.get("code_revision") != rev:
        out.append({"input": "code revision", "key": "", "recorded": lineage.get("code_revision"), "current": rev})
    img = image()
    if lineage.get("image") != img:
        out.append({"input": "image", "key": "", "recorded": lineage.get("image"), "current": img})
    # The recorded config re-read by today's code: new defaults or renamed fields show up here.
    for row in dict_diff(lineage.get("config", {}), json.loads(cfg.to_json())):
        out.append({"input": "config", "key": row["key"], "recorded": row["a"], "current": row["b"]})
    return out
