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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from civicml.config import ColumnSpec, RunConfig, ServingConfig
from civicml.modeling.estimators import TrainedModel
from civicml.serving.fastpath import Scorer
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
    scorer: Scorer


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


@dataclass(frozen=True)
class ServedSet:
    """The versions being served and the split between them: replaced as a whole, never edited.

    Requests read `ServingState.served` once and work on that object, so a switch between two
    reads cannot give a request the new routing with the old models (or the reverse).
    """

    routing: Routing
    models: dict[str, ServedModel]
    loaded_at: str = field(default_factory=utcnow)


@dataclass
class ServingState:
    """Everything the routes need; built before the server starts, `served` replaced on a switch."""

    model_name: str
    served: ServedSet
    registry: Registry
    workdir: Path
    server_id: str = field(default_factory=new_server_id)
    flush_records: int = 256
    flush_interval: float = 0.0
    log_ack: str = "durable"
    serving: ServingConfig = field(default_factory=ServingConfig)
    # The last refresh that could not be served (kept until a later refresh succeeds): shown on /v2/models.
    reload_error: str | None = None

    @property
    def models(self) -> dict[str, ServedModel]:
        """The loaded models by arm (of the current `served` set)."""
        return self.served.models

    @property
    def routing(self) -> Routing:
        """The routing of the current `served` set."""
        return self.served.routing

    def arm_for(self, key: str) -> ServedModel:
        """The served model for a sticky key (salted by the challenger version: one split per experiment)."""
        served = self.served
        share = served.routing.effective_share if CHALLENGER in served.models else 0.0
        arm = choose_arm(key, share, salt=served.routing.challenger or "")
        return served.models[arm]


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
        scorer = Scorer(model)
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
    return ServedModel(arm=arm, version=version, model=model, schema=schema, manifest=manifest, scorer=scorer)


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
    return ServingState(
        model_name=cfg.name,
        served=load_set(registry, routing, work),
        registry=registry,
        workdir=work,
        flush_records=cfg.deploy.log_batch_records,
        flush_interval=cfg.deploy.log_flush_seconds,
        log_ack=cfg.deploy.log_ack,
        serving=cfg.serving,
    )


def load_set(registry: Registry, routing: Routing, workdir: Path, current: ServedSet | None = None) -> ServedSet:
    """Load (and verify) every version `routing` names; versions `current` already serves are reused.

    Blocking (downloads and parses models): the server calls it in a worker thread.

    Raises:
        ServingError: no champion, or a version that is not approved, fails its integrity or trust
            check, or cannot be loaded. Nothing is partly switched: the caller keeps `current`.
    """
    if not routing.champion:
        raise ServingError("the routing names no champion version")
    loaded = {m.version: m for m in (current.models.values() if current else [])}
    models: dict[str, ServedModel] = {}
    for arm, version in ((CHAMPION, routing.champion), (CHALLENGER, routing.challenger)):
        if not version:
            continue
        known = loaded.get(version)
        # A version changes arm (a promoted challenger) without being fetched again: it was verified on load.
        if known:
            models[arm] = replace(known, arm=arm)
            continue
        try:
            models[arm] = _load_version(registry, version, arm, workdir)
        except ServingError:
            raise
        except Exception as err:  # noqa: BLE001 - a model library's own error (e.g. XGBoostError) is "cannot serve"
            raise ServingError(f"cannot serve {arm} version {version}: {type(err).__name__}: {err}") from None
    return ServedSet(routing=routing, models=models)
