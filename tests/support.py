"""Small builders the unit and integration tests share: a tiny trained model, a gated version."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from civicml.config import RunConfig, load_config
from civicml.data.demo import CATEGORICAL, NUMERIC, TARGET, generate_benefits
from civicml.governance.trust import commit_version
from civicml.modeling.estimators import fit_model
from civicml.modeling.persistence import save_model
from civicml.modeling.preprocessing import FeatureSpec
from civicml.steps import model_hash
from civicml.storage.registry import Registry, sha256_bytes

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]


def demo_config(store: Path, rows: int, trials: int, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The repo's civicml.yaml on `rows` demo rows and `trials` tuning trials, its store at `store`.

    `overrides` are further dotted keys, as `load_config` takes them.
    """
    base = {"storage.uri": str(store), "data.demo.rows": rows, "tuning.max_trials": trials}
    return load_config(REPO / "civicml.yaml", {**base, **(overrides or {})})


def tiny_model_dir(directory: Path, rows: int = 400, seed: int = 3, n_estimators: int = 3) -> Path:
    """Train a few-tree XGBoost model on demo rows and save it (safe formats) under `directory`."""
    df = generate_benefits(rows=rows, seed=seed)
    spec = FeatureSpec.fit(df, TARGET, "binary_classification", NUMERIC, CATEGORICAL)
    model = fit_model("xgboost", spec, {"n_estimators": n_estimators, "max_depth": 2}, df, 1, 1)
    save_model(model, directory)
    return directory


def gated_version(
    registry: Registry,
    version: str,
    model_dir: Path,
    gate: dict[str, Any],
    status: str,
    *,
    roc_auc: float = 0.8,
    eval_model_sha: str | None = None,
    extra_meta: dict[str, Any] | None = None,
    commit=commit_version,
) -> str:
    """Upload `model_dir` with an evaluation and `gate`, commit it as `version`; return the model hash.

    `commit` is the committing function: governance.trust.commit_version (a version the audit
    chain vouches for) or Registry.commit (a bare manifest), called as commit(registry, version, arts, meta).
    """
    sha = model_hash(model_dir)
    arts = registry.upload_dir(version, "model", model_dir)
    ev = json.dumps({"metrics": {"roc_auc": roc_auc}, "model_sha256": eval_model_sha or sha}).encode()
    arts["evaluation.json"] = registry.upload(version, "evaluation.json", ev)
    arts["gate.json"] = registry.upload(version, "gate.json", json.dumps(gate).encode())
    meta = {"status": status, "model_sha256": sha, "evaluation_sha256": sha256_bytes(ev), **(extra_meta or {})}
    commit(registry, version, arts, meta)
    return sha


# A small, fast demo run: enough rows for the gate's intervals, one tuning trial.
FAST = {
    "data.demo.rows": 1200,
    "model.n_threads": 1,
    "model.params": {"n_estimators": 25, "max_depth": 3},
    "tuning.max_trials": 1,
    "tuning.search_space": {"learning_rate": {"type": "double", "min": 0.05, "max": 0.3}},
}


def train_through_gate(cfg, work: Path, report: bool = False) -> None:
    """validate -> tune -> train -> evaluate -> gate, as the pipeline runs them, with outputs under `work`."""
    from civicml import steps

    w = str(work)
    steps.validate_data(cfg, f"{w}/data")
    steps.tune(cfg, f"{w}/data", f"{w}/params.json")
    steps.train(cfg, f"{w}/data", f"{w}/params.json", f"{w}/model")
    steps.evaluate(cfg, f"{w}/data", f"{w}/model", f"{w}/eval.json", f"{w}/report.html" if report else None)
    steps.gate(cfg, f"{w}/eval.json", f"{w}/gate.json")


def register_trained(cfg, work: Path, version: str | None = None, started_by: str = "") -> dict[str, Any]:
    """Run the register step on train_through_gate's files under `work`; the committed manifest.

    With `version`, the same trained files are registered under another version id: a cheap
    second committed version (training is what takes time).
    """
    from civicml import steps

    w = str(work)
    if version:
        info_path = work / "data" / "data_info.json"
        info = json.loads(info_path.read_text())
        info["version"] = version
        info_path.write_text(json.dumps(info))
    report = f"{w}/report.html" if (work / "report.html").is_file() else None
    return steps.register(
        cfg,
        f"{w}/data",
        f"{w}/params.json",
        f"{w}/model",
        f"{w}/eval.json",
        f"{w}/gate.json",
        report,
        started_by=started_by,
    )


def start_real_server(start: Callable[[], T]) -> T:
    """Start a real test server with `start`, or fail the test with the server's own reason.

    A missing build or a server that does not come up fails (never skips) unless the developer
    opted out with CIVICML_SKIP_CLUSTER (require_real_servers skips loudly then).
    """
    from testcluster.procs import ServerError, require_real_servers

    require_real_servers()
    try:
        return start()
    except ServerError as err:
        pytest.fail(str(err), pytrace=False)


def free_port() -> int:
    """A TCP port free on loopback now (for a test server started on it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
