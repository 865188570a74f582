"""What every step shares: the config, the registry, and the files one step hands the next.

Heavy libraries (pandas, scikit-learn, XGBoost) are imported inside the functions that use
them: every pipeline step is a fresh process, and gate/register/deploy need none of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from civicml.config import RunConfig
from civicml.storage.registry import Registry
from civicml.storage.store import open_store

if TYPE_CHECKING:
    import pandas as pd

    from civicml.modeling.preprocessing import FeatureSpec

SPLITS = ("train", "valid", "test")
FEATURE_SPEC = "feature_spec.json"


def cfg_of(config: RunConfig | str) -> RunConfig:
    """The run config, from the object or its JSON (what a KFP component passes)."""
    return config if isinstance(config, RunConfig) else RunConfig.from_json(config)


def registry_of(cfg: RunConfig) -> Registry:
    """The registry on the config's store."""
    return Registry(open_store(cfg.storage.uri), project=cfg.name)


def write_json(path: str | Path, obj: Any) -> None:
    """Write `obj` as indented, key-sorted JSON, creating the parent directory."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def read_optional_json(path: str | None) -> Any:
    """Read a JSON file that an optional step input may not have produced (None when absent)."""
    return read_json(path) if path and Path(path).is_file() else None


def write_text(path: str | Path | None, text: str) -> None:
    """Write `text` to `path` (creating the parent directory); nothing when no path is given."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


def load_splits(
    data_dir: str | Path, names: tuple[str, ...] = SPLITS, columns: list[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Read split Parquet files written by `validate_data`.

    Args:
        data_dir: The validated data directory.
        names: Which splits to read (default all three); a step reads only the ones it uses, because
            at 1M rows every split it holds counts in its peak memory (issue 18).
        columns: Read only these columns (default all).

    Returns:
        The splits by name.
    """
    import pandas as pd

    d = Path(data_dir)
    return {name: pd.read_parquet(d / f"{name}.parquet", columns=columns) for name in names}


def data_info(data_dir: str | Path) -> dict[str, Any]:
    """The `data_info.json` written by `validate_data` (features, fingerprint, version)."""
    return read_json(Path(data_dir) / "data_info.json")


def feature_spec(cfg: RunConfig, data_dir: str | Path, train: pd.DataFrame | None = None) -> FeatureSpec:
    """The feature spec `validate_data` fitted on the whole training split (fitted here for older data dirs)."""
    from civicml.modeling.preprocessing import FeatureSpec

    path = Path(data_dir) / FEATURE_SPEC
    if path.is_file():
        return FeatureSpec.from_dict(read_json(path))
    info = data_info(data_dir)
    return FeatureSpec.fit(train, cfg.data.target, cfg.task, info["numeric_features"], info["categorical_features"])


def model_hash(model_dir: str | Path) -> str:
    """sha256 over every file of a saved model (see `civicml.modeling.persistence.model_hash`)."""
    from civicml.modeling.persistence import model_hash as _model_hash

    return _model_hash(model_dir)


def champion_fingerprint(registry: Registry) -> tuple[str | None, int]:
    """The data fingerprint the current champion was trained on, and its definition's version.

    Returns:
        `(fingerprint, version)`; `(None, current version)` when there is no champion. Compare a
        new batch's fingerprint computed at that version (`civicml.data.fingerprint`), never the
        current one against an older definition's.
    """
    from civicml.data.fingerprint import FINGERPRINT_VERSION, recorded_version

    champion = registry.get_alias("champion")
    if not champion:
        return None, FINGERPRINT_VERSION
    lineage = registry.manifest(champion).get("lineage", {})
    return lineage.get("data_fingerprint"), recorded_version(lineage)
