"""What the server serves: the loaded models, the routing between them, the store's health.

`load_state` fetches the champion (and the challenger, when one is set) from the
registry, verifying every artifact's sha256, and builds each version's input
validator from its data contract. Models are loaded before the port is bound, so a
tampered or missing artifact stops the server with a clear error instead of serving.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civicml.config import ColumnSpec, RunConfig, ServingConfig
from civicml.modeling.estimators import TrainedModel
from civicml.serving.predlog import new_server_id
from civicml.serving.routing import CHALLENGER, CHAMPION, Routing, choose_arm, current_routing
from civicml.serving.schemas import RecordSchema
from civicml.storage.registry import Registry, RegistryError, utcnow

# Under logs/: on a cluster the server's store credential may write only there (storage.server_secret_name).
HEALTH_PREFIX = "logs/health"


class ServingError(RuntimeError):
    """The server cannot start: no champion, or a model fails to load or verify."""


@dataclass
class ServedModel:
    """One loaded model version and its input validator."""

    arm: str
    version: str
    model: TrainedModel
    schema: RecordSchema
    manifest: dict[str, Any]


class StoreHealth:
    """Whether the store takes writes: predictions are refused without their log, so readiness follows it.

    A probe object (`logs/health/<server-id>.json`) is written at most every `every_seconds`;
    a failed log write marks the store down at once, a successful one marks it up.
    """

    def __init__(self, registry: Registry, server_id: str, every_seconds: float = 5.0):
        self.registry = registry
        self.key = f"{HEALTH_PREFIX}/{server_id}.json"
        self.every = every_seconds
        self.ok = True
        self.reason = ""
        self._checked = 0.0
        self._lock = threading.Lock()

    def mark(self, ok: bool, reason: str = "") -> None:
        """Record the outcome of a real write (a log flush)."""
        self.ok, self.reason, self._checked = ok, reason, time.monotonic()

    def check(self) -> tuple[bool, str]:
        """Probe the store if the last outcome is older than `every_seconds` (blocking; call in a thread)."""
        with self._lock:
            if time.monotonic() - self._checked < self.every:
                return self.ok, self.reason
            try:
                self.registry.store.put_bytes(self.key, json.dumps({"at": utcnow()}).encode())
                self.mark(True)
            except Exception as err:  # noqa: BLE001 - any store failure means "not ready", never a crash
                self.mark(False, f"the store {self.registry.store.describe()} does not take writes: {err}")
            return self.ok, self.reason


@dataclass
class ServingState:
    """Everything the routes need; built once before the server starts."""

    model_name: str
    models: dict[str, ServedModel]
    routing: Routing
    registry: Registry
    server_id: str = field(default_factory=new_server_id)
    refresh_seconds: float = 30.0
    flush_records: int = 256
    flush_interval: float = 0.01
    serving: ServingConfig = field(default_factory=ServingConfig)

    def arm_for(self, key: str) -> ServedModel:
        """The served model for a sticky key (salted by the challenger version: one split per experiment)."""
        share = self.routing.effective_share if CHALLENGER in self.models else 0.0
        arm = choose_arm(key, share, salt=self.routing.challenger or "")
        return self.models[arm]


def _load_version(registry: Registry, version: str, arm: str, workdir: Path) -> ServedModel:
    from civicml.governance.approval import version_status
    from civicml.governance.trust import check_version
    from civicml.modeling.persistence import ModelLoadError, load_model

    try:
        status = version_status(registry, version)
        if status.status != "approved":
            # Invariant 6 at the last step: an alias pointing at an unapproved version serves no one.
            raise ServingError(f"refusing to serve {arm} version {version}: {status.describe()}")
        # The manifest's status, hashes and metrics must be the ones the audit log recorded at commit
        # (a rewritten manifest that points at a swapped model is refused here, not just by `models verify`).
        check_version(registry, version)
        problems = registry.verify(version)
        if problems:
            raise RegistryError("; ".join(problems))
        model_dir = registry.fetch_prefix(version, "model", workdir / version / "model")
        model = load_model(model_dir)
        if model.family == "xgboost":
            # Requests are parallel already; OpenMP threads per tiny batch only contend for the cores.
            model.estimator.set_params(n_jobs=1)
        manifest = registry.manifest(version)
        if "data/contract.json" in manifest["artifacts"]:
            contract = [
                ColumnSpec.model_validate(c) for c in json.loads(registry.read_artifact(version, "data/contract.json"))
            ]
        else:
            contract = []
    except (RegistryError, ModelLoadError) as err:
        raise ServingError(f"cannot serve {arm} version {version}: {err}") from None
    schema = RecordSchema(model.spec, contract, target=model.spec.target)
    return ServedModel(arm=arm, version=version, model=model, schema=schema, manifest=manifest)


def load_state(cfg: RunConfig, registry: Registry, workdir: str | Path | None = None) -> ServingState:
    """Load the champion and (when set) the challenger, verifying every artifact.

    Raises:
        ServingError: no champion is set, or an artifact is missing, tampered with or unloadable.
    """
    try:
        routing = current_routing(registry)
    except (RegistryError, ValueError) as err:
        raise ServingError(str(err)) from None
    if not routing.champion:
        raise ServingError(
            f"no champion model in {registry.store.describe()}: run the pipeline (`civicml run`) or promote a "
            "version with `civicml deploy VERSION` before serving"
        )
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="civicml-serve-"))
    models = {CHAMPION: _load_version(registry, routing.champion, CHAMPION, work)}
    if routing.challenger:
        models[CHALLENGER] = _load_version(registry, routing.challenger, CHALLENGER, work)
    return ServingState(
        model_name=cfg.name,
        models=models,
        routing=routing,
        registry=registry,
        flush_records=cfg.deploy.log_batch_records,
        flush_interval=cfg.deploy.log_flush_seconds,
        serving=cfg.serving,
    )
