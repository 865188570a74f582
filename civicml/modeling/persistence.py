"""Save and load models without pickle: XGBoost UBJ + JSON spec, scikit-learn via skops.

Nothing read from storage is ever unpickled; skops loads only its own safe defaults plus the
exact types in `SKOPS_TRUSTED_TYPES`, so a tampered file cannot name a callable to run.
"""

from __future__ import annotations

import json
from pathlib import Path

from civicml.catalog import DEFAULT_THRESHOLD
from civicml.modeling.estimators import TrainedModel
from civicml.modeling.preprocessing import FeatureSpec
from civicml.storage.hashing import tree_hash

MODEL_META = "model.json"
XGB_FILE = "model.ubj"
SKOPS_FILE = "model.skops"
# The exact types, beyond skops' own safe defaults, that the models civicml saves contain: what
# `skops.io.get_untrusted_types` reports for logistic regression and random forest pipelines (both
# tasks, numeric and categorical columns). Never a prefix: `builtins.` would admit `builtins.exec`,
# which a skops reduce node calls. tests/unit/test_hostile_store.py regenerates this from real models.
SKOPS_TRUSTED_TYPES = frozenset({"numpy.dtype", "sklearn.tree._tree.Tree"})


class ModelLoadError(RuntimeError):
    """A saved model cannot be loaded safely."""


def save_model(model: TrainedModel, directory: str | Path) -> list[Path]:
    """Write the model into `directory`; returns the files written (deterministic bytes)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = {"family": model.family, "params": model.params, "spec": model.spec.to_dict(), "format": 1}
    if model.task == "binary_classification" and model.threshold != DEFAULT_THRESHOLD:
        # Only a chosen threshold is written: models at the default keep their bytes (and hashes).
        meta["threshold"] = model.threshold
    files = [d / MODEL_META]
    files[0].write_text(json.dumps(meta, indent=2, default=str))  # no sort_keys: feature order matters
    if model.family == "xgboost":
        path = d / XGB_FILE
        model.estimator.get_booster().save_model(str(path))
    else:
        import skops.io as sio

        path = d / SKOPS_FILE
        sio.dump(model.estimator, str(path))
    files.append(path)
    return files


def load_model(directory: str | Path) -> TrainedModel:
    """Load a model saved by `save_model` (integrity is checked by the registry before this)."""
    d = Path(directory)
    meta_path = d / MODEL_META
    if not meta_path.is_file():
        raise ModelLoadError(f"{d} is not a civicml model directory: {MODEL_META} is missing")
    meta = json.loads(meta_path.read_text())
    spec = FeatureSpec.from_dict(meta["spec"])
    family = meta["family"]
    if family == "xgboost":
        import xgboost as xgb

        cls = xgb.XGBClassifier if spec.task == "binary_classification" else xgb.XGBRegressor
        est = cls()
        est.load_model(str(d / XGB_FILE))
    else:
        import skops.io as sio

        path = str(d / SKOPS_FILE)
        try:
            untrusted = sio.get_untrusted_types(file=path)
        except Exception as err:  # noqa: BLE001 - any parse failure of a stored file is a refusal, not a crash
            raise ModelLoadError(f"refusing to load {path}: it is not a readable skops file ({err})") from None
        refused = sorted(t for t in untrusted if t not in SKOPS_TRUSTED_TYPES)
        if refused:
            raise ModelLoadError(
                f"refusing to load {path}: it names types outside civicml's allow-list: {', '.join(refused)}. "
                "A model saved by civicml contains only scikit-learn estimators; this file was modified or "
                "was not written by civicml — retrain the version or restore the file"
            )
        est = sio.load(path, trusted=sorted(SKOPS_TRUSTED_TYPES & set(untrusted)))
    threshold = float(meta.get("threshold", DEFAULT_THRESHOLD))
    return TrainedModel(family=family, spec=spec, params=meta["params"], estimator=est, threshold=threshold)


def model_hash_from_files(files: dict[str, bytes]) -> str:
    """The model hash from `{relative name: bytes}` (the one definition: `civicml.storage.hashing.tree_hash`).

    Both a saved directory (`model_hash`) and the files stored in the registry hash this way,
    so an approval can be bound to exactly the model that was evaluated.
    """
    import hashlib

    return tree_hash({name: hashlib.sha256(data).hexdigest() for name, data in files.items()})


def model_hash(model_dir: str | Path) -> str:
    """sha256 over every file of a saved model directory, by relative name, in sorted order."""
    root = Path(model_dir)
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    return model_hash_from_files(files)
