"""One Katib trial: fetch the tuning split from the store, train one candidate, print metrics.

On a cluster the pipeline's tune step uploads the train/valid split with
`upload_tuning_data` before it submits the Experiment; every trial Job then runs
``civicml trial --version V --param name=value ...``, which downloads that split with
`download_tuning_data`, trains with `run_trial` and prints ``name=value`` lines that
Katib's StdOut metrics collector parses with its default metricsFormat
(`KATIB_METRICS_REGEX`).

Store layout (under the run's staging prefix, so an abandoned run's copy is swept
by `Registry.gc_staging` like any other staged file)::

    staging/<version>/tuning-data/train.parquet
    staging/<version>/tuning-data/valid.parquet
    staging/<version>/tuning-data/data_info.json
    staging/<version>/tuning-data/config.json   the run config (no secrets, by invariant)
    staging/<version>/tuning-data/index.json    sha256 of the four files above, written last
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from civicml.config import RunConfig
from civicml.modeling.preprocessing import FeatureSpec
from civicml.modeling.search_space import coerce_params, space_for
from civicml.storage.artifacts import get_verified
from civicml.storage.registry import Registry
from civicml.storage.store import Store
from civicml.tuning.objective import TuningError, make_round_observer, per_round_metric, train_and_score

#: Katib's default StdOut metricsFormat (pkg/metricscollector/v1beta1/common/const.go).
KATIB_METRICS_REGEX = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"

TUNING_DATA = "tuning-data"
_FILES = ("train.parquet", "valid.parquet", "data_info.json", "config.json")


class TrialDataError(TuningError):
    """The tuning split for a version is missing or does not match its index."""


def tuning_data_key(version: str, name: str) -> str:
    """Store key of one tuning-data file of `version`."""
    return f"staging/{version}/{TUNING_DATA}/{name}"


def upload_tuning_data(cfg: RunConfig, data_dir: str | Path, version: str, store: Store) -> dict[str, Any]:
    """Upload the train/valid split, data info and config for Katib trials; the index goes last.

    Args:
        cfg: The run config (stored so every trial trains exactly as this run would).
        data_dir: Directory written by `civicml.steps.validate_data`.
        version: The run's model version id.
        store: The object store the trials will read (same `CIVICML_STORE_URI`).

    Returns:
        The index: file name -> {key, sha256, size}.
    """
    registry = Registry(store)
    d = Path(data_dir)
    payloads = {
        "train.parquet": (d / "train.parquet").read_bytes(),
        "valid.parquet": (d / "valid.parquet").read_bytes(),
        "data_info.json": (d / "data_info.json").read_bytes(),
        "config.json": cfg.to_json().encode(),
    }
    index = {name: registry.upload(version, f"{TUNING_DATA}/{name}", data) for name, data in payloads.items()}
    # Written last: a trial that finds the index finds complete, matching files.
    store.put_bytes(tuning_data_key(version, "index.json"), json.dumps(index, indent=2, sort_keys=True).encode())
    return index


def download_tuning_data(store: Store, version: str, dest: str | Path) -> tuple[RunConfig, Path]:
    """Download and verify the tuning split of `version` into `dest`.

    Returns:
        The run config stored with the split, and `dest` (holding train/valid Parquet and
        data_info.json, the same layout `validate_data` writes).

    Raises:
        TrialDataError: no index for `version`, a file is missing, or a sha256 differs.
    """
    try:
        index = json.loads(store.get_bytes(tuning_data_key(version, "index.json")))
    except FileNotFoundError:
        raise TrialDataError(
            f"no tuning data for version {version!r} in store {store.describe()} "
            f"(expected {tuning_data_key(version, 'index.json')}); the pipeline's tune step uploads it before "
            "submitting the Katib Experiment — check --version and CIVICML_STORE_URI"
        ) from None
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for name in _FILES:
        entry = index.get(name)
        if entry is None:
            raise TrialDataError(f"tuning data index of {version} lists no {name}")
        (out / name).write_bytes(_verified_file(store, entry))
    return RunConfig.from_json((out / "config.json").read_text()), out


def _verified_file(store: Store, entry: dict[str, str]) -> bytes:
    """One file of the tuning data (`{key, sha256}` from its index), checked against its sha256."""
    key, sha256 = entry["key"], entry["sha256"]
    return get_verified(
        store,
        key,
        sha256,
        missing=lambda: TrialDataError(f"tuning data file {key} is missing from {store.describe()}"),
        modified=lambda actual: TrialDataError(
            f"tuning data file {key} does not match its index (sha256 {actual[:16]}… vs "
            f"{sha256[:16]}…); refusing to train on modified data"
        ),
    )


def load_trial_data(data_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Read train, valid and data_info from a `validate_data` (or downloaded) directory.

    Raises:
        FileNotFoundError: a required file is missing (names it and how to create it).
    """
    d = Path(data_dir)
    for name in ("train.parquet", "valid.parquet", "data_info.json"):
        if not (d / name).is_file():
            raise FileNotFoundError(
                f"{d / name} not found; --data-dir must be a directory written by validate_data "
                "(e.g. the data output of `civicml run`)"
            )
    info = json.loads((d / "data_info.json").read_text())
    return pd.read_parquet(d / "train.parquet"), pd.read_parquet(d / "valid.parquet"), info


def parse_param_args(params_json: str | None, pairs: list[str] | None) -> dict[str, Any]:
    """Merge `--params JSON` and repeated `--param name=value` into one mapping (flags win).

    Raises:
        ValueError: bad JSON, a non-object JSON, or a flag without `=`.
    """
    raw: dict[str, Any] = {}
    if params_json:
        try:
            parsed = json.loads(params_json)
        except json.JSONDecodeError as err:
            raise ValueError(f"--params is not valid JSON ({err.msg}); example: '{{\"max_depth\": 4}}'") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"--params must be a JSON object of name: value, got {type(parsed).__name__}")
        raw.update(parsed)
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param {pair!r} must look like name=value, e.g. --param max_depth=4")
        raw[name.strip()] = value.strip()
    return raw


def format_metric(name: str, value: float | None, timestamp: str | None = None) -> str | None:
    """One `[TIMESTAMP ]name=value` line Katib's collector parses, or None for a non-finite value.

    Katib's file collector takes the text before the first space as the observation's
    time when it parses as RFC3339Nano; without it every value gets the zero time, and
    "latest" or medianstop's first-N then depend on the database's order among ties.
    """
    if value is None or not math.isfinite(float(value)):
        return None
    line = f"{name}={float(value):.10g}"
    return f"{timestamp} {line}" if timestamp else line


class MetricClock:
    """Strictly increasing RFC3339Nano UTC timestamps (two lines never share a time)."""

    def __init__(self, now_ns: Callable[[], int] = time.time_ns):
        self._now_ns = now_ns
        self._last = 0

    def __call__(self) -> str:
        ns = max(self._now_ns(), self._last + 1)
        self._last = ns
        seconds, frac = divmod(ns, 1_000_000_000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def run_trial(
    cfg: RunConfig,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    info: dict[str, Any],
    raw_params: dict[str, Any],
    emit: Callable[[str], None] = print,
    report_rounds: bool | None = None,
    clock: Callable[[], str] | None = None,
) -> dict[str, float]:
    """Train one candidate on train, score it on valid and emit the metrics as `name=value` lines.

    Args:
        cfg: Run config (model family, fixed params, seeds, search space, objective).
        train: Training rows.
        valid: Validation rows.
        info: `data_info.json` (feature lists).
        raw_params: Parameter values, possibly as text; checked against the search space.
        emit: Where lines go (stdout in the CLI, which Katib's collector reads).
        report_rounds: Emit the objective after every boosting round (for Katib's
            medianstop); default: when early stopping is configured and the model has rounds.
        clock: Timestamp for each line (default: strictly increasing wall-clock RFC3339Nano).

    Returns:
        The validation metrics.
    """
    t = cfg.tuning
    stamp = clock or MetricClock()
    space = space_for(cfg.model.family, t.search_space)
    params = coerce_params(space, raw_params)
    spec = FeatureSpec.fit(train, cfg.data.target, cfg.task, info["numeric_features"], info["categorical_features"])
    round_metric = per_round_metric(cfg)
    if report_rounds is None:
        report_rounds = t.early_stopping is not None
    callbacks = None
    if report_rounds and round_metric is not None:

        def on_round(step: int, value: float) -> None:
            line = format_metric(t.objective_metric, value, stamp())
            if line:
                emit(line)

        callbacks = [make_round_observer(round_metric, on_round)]
    metrics = train_and_score(cfg, spec, params, train, valid, callbacks=callbacks)
    # The objective goes last: Katib's "latest" strategy then reads the final model's value.
    for name in [*(n for n in sorted(metrics) if n != t.objective_metric), t.objective_metric]:
        line = format_metric(name, metrics.get(name), stamp()) if name in metrics else None
        if line:
            emit(line)
    return metrics


def parse_katib_metrics(text: str, names: list[str] | None = None) -> dict[str, list[float]]:
    """Parse stdout the way Katib's StdOut collector does (default metricsFormat).

    Returns:
        metric name -> every value seen, in order (filtered to `names` when given).
    """
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        for match in re.finditer(KATIB_METRICS_REGEX, line):
            name, value = match.group(1), match.group(2)
            if names is not None and name not in names:
                continue
            out.setdefault(name, []).append(float(value))
    return out
