"""What the model-server tests share: demo configs, committed versions, a served registry, a loopback server.

`build_registry(root)` makes two real versions on demo data (validated data, fit, saved, committed
with their contract) and deploys them through `steps.deploy`: the first as champion, the second as
challenger at SHARE. `ServerThread(app)` runs uvicorn on a free loopback port and yields an httpx
client. `serving_env()` clears the store and routing-file variables the tests must not inherit.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from support import free_port

from civicml import steps
from civicml.config import RunConfig
from civicml.data.demo import CATEGORICAL, NUMERIC, generate_benefits
from civicml.governance.trust import commit_version
from civicml.serving.routing import CHALLENGER, CHAMPION, ROUTING_FILE_ENV
from civicml.storage.registry import Registry, new_version_id
from civicml.storage.store import LocalStore

SHARE = 0.3


def demo_config(store: Path, rows: int, **sections: Any) -> dict[str, Any]:
    """A raw config on `rows` demo rows (sensitive attributes and PII named) over the store at `store`."""
    return {
        "data": {
            "demo": {"rows": rows},
            "sensitive_attributes": ["sex", "age_band", "region"],
            "pii_columns": ["claimant_name"],
        },
        "storage": {"uri": str(store)},
        **sections,
    }


def prepared_data(cfg: RunConfig, data_dir: Path) -> tuple[Any, Any]:
    """Validate the demo data into `data_dir`; return the training split and its feature spec."""
    steps.validate_data(cfg, str(data_dir))
    train = steps.load_splits(data_dir)["train"]
    return train, steps.feature_spec(cfg, data_dir, train)


def commit_served(reg: Registry, cfg: RunConfig, model_dir: Path, contract: bytes) -> str:
    """Commit a saved model and its data contract as a new approved version; return its id."""
    version = new_version_id()
    artifacts = reg.upload_dir(version, "model", model_dir)
    artifacts["data/contract.json"] = reg.upload(version, "data/contract.json", contract)
    commit_version(reg, version, artifacts, {"name": cfg.name, "status": "approved"})
    return version


def build_registry(root: Path) -> tuple[RunConfig, Registry, str, str]:
    """Two versions on demo data, deployed: the first as champion, the second as challenger at SHARE."""
    from civicml.modeling.estimators import build_params, fit_model
    from civicml.modeling.persistence import save_model

    cfg = RunConfig.model_validate(
        demo_config(root / "store", 3000, deploy={"mode": "challenger", "challenger_traffic": SHARE})
    )
    data_dir = root / "data"
    train, spec = prepared_data(cfg, data_dir)
    reg = Registry(LocalStore(root / "store"))
    versions = []
    for i, params in enumerate(({"n_estimators": 40, "max_depth": 4}, {"n_estimators": 20, "max_depth": 2})):
        model = fit_model("xgboost", spec, build_params("xgboost", params, {}), train, 42, 1)
        save_model(model, root / f"model{i}")
        version = commit_served(reg, cfg, root / f"model{i}", (data_dir / "contract.json").read_bytes())
        steps.deploy(cfg, version)
        versions.append(version)
    assert reg.get_alias(CHAMPION) == versions[0] and reg.get_alias(CHALLENGER) == versions[1]
    return cfg, reg, versions[0], versions[1]


@contextmanager
def serving_env(feedback_token: str | None = None) -> Iterator[None]:
    """No store or routing file from the environment (and the feedback token, when given), then undone."""
    mp = pytest.MonkeyPatch()
    mp.delenv("CIVICML_STORE_URI", raising=False)
    mp.delenv(ROUTING_FILE_ENV, raising=False)
    if feedback_token:
        mp.setenv("CIVICML_FEEDBACK_TOKEN", feedback_token)
    try:
        yield
    finally:
        mp.undo()


def demo_records(n: int, seed: int = 11) -> tuple[list[dict[str, Any]], list[Any]]:
    """`n` demo records (features and region) as JSON objects, and their labels."""
    df = generate_benefits(n, seed=seed)
    return json.loads(df[NUMERIC + CATEGORICAL + ["region"]].to_json(orient="records")), df["needs_review"].tolist()


class ServerThread:
    """uvicorn on a free loopback port in a background thread."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("server thread died during start-up")
            self.thread.join(0.05)
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)
