"""HTTP model server: Open Inference Protocol v2 + `/predict`, champion/challenger routing,
feedback, Prometheus metrics and a durable prediction log.

`load_state` fetches the champion (and the challenger, when one is set) from the
registry, verifying every artifact's sha256, and builds each version's input
validator from its data contract. `create_app` wires the routes. Models are loaded
before the port is bound, so a tampered or missing artifact stops the server with a
clear error instead of serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import tempfile
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool

from civicml.config import ColumnSpec, RunConfig
from civicml.modeling.estimators import TrainedModel
from civicml.serving.predlog import FEEDBACK, PREDICTIONS, BatchLog, LogUnavailable, new_server_id
from civicml.serving.routing import CHALLENGER, CHAMPION, Routing, choose_arm, current_routing
from civicml.serving.schemas import RecordSchema
from civicml.storage.registry import Registry, RegistryError, utcnow

log = logging.getLogger("civicml.serving")

REQUEST_ID_HEADER = "X-Request-ID"
KEY_HEADER = "X-Civicml-Key"
VERSION_HEADER = "X-Model-Version"
ARM_HEADER = "X-Model-Arm"
MAX_BODY_BYTES = 10 * 1024 * 1024


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

    def arm_for(self, key: str) -> ServedModel:
        """The served model for a sticky key (salted by the challenger version: one split per experiment)."""
        share = self.routing.effective_share if CHALLENGER in self.models else 0.0
        arm = choose_arm(key, share, salt=self.routing.challenger or "")
        return self.models[arm]


def _load_version(registry: Registry, version: str, arm: str, workdir: Path) -> ServedModel:
    from civicml.governance.approval import version_status
    from civicml.modeling.persistence import ModelLoadError, load_model

    try:
        status = version_status(registry, version)
        if status.status != "approved":
            # Invariant 6 at the last step: an alias pointing at an unapproved version serves no one.
            raise ServingError(f"refusing to serve {arm} version {version}: {status.describe()}")
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
    )


class _Metrics:
    def __init__(self) -> None:
        # A registry per app: several apps in one process (tests) must not collide.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "civicml_requests_total", "HTTP requests", ["route", "method", "status"], registry=self.registry
        )
        self.errors = Counter(
            "civicml_request_errors_total",
            "HTTP responses with status >= 400",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "civicml_request_latency_seconds",
            "request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.predictions = Counter(
            "civicml_predictions_total", "predicted rows per arm", ["arm", "version"], registry=self.registry
        )
        self.feedback = Counter("civicml_feedback_total", "feedback records received", registry=self.registry)


def _request_id(request: Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    if given and len(given) <= 128 and given.isprintable():
        return given
    return uuid.uuid4().hex


def _invalid(errors: list[dict[str, Any]]) -> RequestValidationError:
    return RequestValidationError(errors)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise _invalid(
            [
                {
                    "type": "too_long",
                    "loc": ["body"],
                    "input": None,
                    "msg": f"body larger than {MAX_BODY_BYTES} bytes; send smaller batches",
                }
            ]
        )
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        pos = getattr(err, "pos", 0)
        raise _invalid(
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", pos],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": str(err)},
                }
            ]
        ) from None


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Echoed input made JSON-safe: Python's parser accepts NaN/Infinity/1e999, JSON output does not."""
    if depth > 20:
        return "..."
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in value]
    return repr(value)


def _tag(request: Request, served: ServedModel) -> None:
    request.state.arm = served.arm
    request.state.version = served.version


def create_app(state: ServingState) -> FastAPI:
    """Build the FastAPI app around a loaded `ServingState`."""
    metrics = _Metrics()
    pred_log = BatchLog(state.registry.store, PREDICTIONS, state.server_id, state.flush_records, state.flush_interval)
    fb_log = BatchLog(state.registry.store, FEEDBACK, state.server_id, state.flush_records, state.flush_interval)
    recent: OrderedDict[str, tuple[str, str]] = OrderedDict()
    flags = {"ready": False}

    async def refresh_share() -> None:
        # Only the share is refreshed live; versions change by a new rollout (or a restart locally).
        while True:
            await asyncio.sleep(state.refresh_seconds)
            try:
                fresh = await asyncio.to_thread(current_routing, state.registry)
            except (RegistryError, ValueError, OSError) as err:
                log.warning("could not refresh routing weights: %s", err)
                continue
            if fresh.challenger == state.routing.challenger:
                state.routing.challenger_share = fresh.challenger_share

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await pred_log.start()
        await fb_log.start()
        refresher = asyncio.create_task(refresh_share())
        flags["ready"] = True
        log.info(
            "serving %s: champion %s, challenger %s at %.1f%%",
            state.model_name,
            state.routing.champion,
            state.routing.challenger,
            100 * state.routing.effective_share,
        )
        try:
            yield
        finally:
            flags["ready"] = False
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            # uvicorn runs this after in-flight requests have finished: drain what is still queued.
            await pred_log.close()
            await fb_log.close()

    app = FastAPI(title=f"civicml model server: {state.model_name}", lifespan=lifespan)
    app.state.serving = state
    app.state.logs = {PREDICTIONS: pred_log, FEEDBACK: fb_log}
    app.state.metrics = metrics

    @app.middleware("http")
    async def stamp(request: Request, call_next):
        request.state.request_id = _request_id(request)
        t0 = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            log.exception("unhandled error in request %s", request.state.request_id)
            response = JSONResponse(
                {"detail": "internal error", "request_id": request.state.request_id}, status_code=500
            )
        route = getattr(request.scope.get("route"), "path", "unmatched")
        response.headers[REQUEST_ID_HEADER] = request.state.request_id
        if getattr(request.state, "version", None):
            response.headers[VERSION_HEADER] = request.state.version
            response.headers[ARM_HEADER] = request.state.arm
        metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - t0)
        if response.status_code >= 400:
            metrics.errors.labels(route, str(response.status_code)).inc()
        return response

    def _envelope(request: Request) -> dict[str, Any]:
        return {
            "request_id": request.state.request_id,
            "model_version": getattr(request.state, "version", None),
            "arm": getattr(request.state, "arm", None),
        }

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _json_safe(list(exc.errors())), **_envelope(request)}, status_code=422)

    @app.exception_handler(LogUnavailable)
    async def log_down(request: Request, exc: LogUnavailable):
        return JSONResponse({"detail": f"prediction not served: {exc}", **_envelope(request)}, status_code=503)

    def _route(request: Request, body_key: Any = None) -> ServedModel:
        key = request.headers.get(KEY_HEADER) or (body_key if isinstance(body_key, str) and body_key else None)
        served = state.arm_for(key or request.state.request_id)
        _tag(request, served)
        request.state.key = key
        return served

    async def _score(request: Request, served: ServedModel, records: list[dict[str, Any]]):
        frame = pd.DataFrame.from_records(records, columns=list(records[0]))
        model = served.model

        def run():
            # One pass through the model: the label is the score at the model's threshold.
            score = model.score(frame)
            pred = (score >= 0.5).astype("int64") if model.task == "binary_classification" else score
            return score, pred

        score, pred = await run_in_threadpool(run)
        ts = utcnow()
        rid = request.state.request_id
        rows = [
            {
                "request_id": rid,
                "row": i,
                "key": request.state.key,
                "arm": served.arm,
                "version": served.version,
                "ts": ts,
                "features": rec,
                "score": float(score[i]),
                "prediction": int(pred[i]) if model.task == "binary_classification" else float(pred[i]),
            }
            for i, rec in enumerate(records)
        ]
        # Acknowledge only after the log holds these rows (group commit, see predlog).
        await pred_log.write(rows)
        metrics.predictions.labels(served.arm, served.version).inc(len(rows))
        recent[rid] = (served.arm, served.version)
        while len(recent) > 100_000:
            recent.popitem(last=False)
        return frame, rows

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        if not flags["ready"]:
            return JSONResponse({"ready": False}, status_code=503)
        return {"ready": True}

    @app.get("/v2")
    async def server_metadata():
        return {"name": "civicml", "version": "2", "extensions": []}

    def _known(name: str, request: Request) -> ServedModel | None:
        if name != state.model_name:
            return None
        return state.models[CHAMPION]

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str, request: Request):
        served = _known(name, request)
        if served is None:
            return JSONResponse(
                {"error": f"unknown model {name!r}; this server serves {state.model_name!r}"}, status_code=404
            )
        _tag(request, served)
        return {
            "name": state.model_name,
            "versions": [m.version for m in state.models.values()],
            "platform": f"civicml-{served.model.family}",
            "inputs": served.schema.metadata_inputs(),
            "outputs": [
                {"name": "score", "datatype": "FP64", "shape": [-1]},
                {
                    "name": "prediction",
                    "datatype": "INT64" if served.model.task == "binary_classification" else "FP64",
                    "shape": [-1],
                },
            ],
            "parameters": {
                "champion": state.routing.champion,
                "challenger": state.routing.challenger,
                "challenger_share": state.routing.effective_share,
            },
        }

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str, request: Request):
        if _known(name, request) is None:
            return JSONResponse({"error": f"unknown model {name!r}"}, status_code=404)
        return {"name": name, "ready": flags["ready"]}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request):
        if name != state.model_name:
            return JSONResponse(
                {
                    "error": f"unknown model {name!r}; this server serves {state.model_name!r}",
                    "request_id": request.state.request_id,
                },
                status_code=404,
            )
        try:
            body = await _json_body(request)
        except RequestValidationError:
            _route(request)
            raise
        params = body.get("parameters") if isinstance(body, dict) else None
        key = params.get("key") if isinstance(params, dict) else None
        if (
            isinstance(body, dict)
            and isinstance(body.get("id"), str)
            and body["id"]
            and REQUEST_ID_HEADER.lower() not in request.headers
            and len(body["id"]) <= 128
        ):
            request.state.request_id = body["id"]
        served = _route(request, key)
        if not isinstance(body, dict):
            raise _invalid(
                [
                    {
                        "type": "dict_type",
                        "loc": ["body"],
                        "input": None,
                        "msg": "body must be a v2 inference request object {id?, inputs: [...]}",
                    }
                ]
            )
        records, errors = served.schema.tensors_to_records(body.get("inputs"), loc=("body", "inputs"))
        if errors:
            raise _invalid(errors)
        _, rows = await _score(request, served, records)
        task_cls = served.model.task == "binary_classification"
        return JSONResponse(
            {
                "model_name": state.model_name,
                "model_version": served.version,
                "id": request.state.request_id,
                "parameters": {"arm": served.arm, "request_id": request.state.request_id},
                "outputs": [
                    {"name": "score", "datatype": "FP64", "shape": [len(rows)], "data": [r["score"] for r in rows]},
                    {
                        "name": "prediction",
                        "datatype": "INT64" if task_cls else "FP64",
                        "shape": [len(rows)],
                        "data": [r["prediction"] for r in rows],
                    },
                ],
            },
        )

    @app.post("/predict")
    async def predict(request: Request, explain: bool = False):
        try:
            body = await _json_body(request)
        except RequestValidationError:
            _route(request)
            raise
        served = _route(request, body.get("key") if isinstance(body, dict) else None)
        if isinstance(body, dict) and "records" in body:
            extra = sorted(set(body) - {"records", "key"})
            if extra:
                raise _invalid(
                    [
                        {
                            "type": "extra_forbidden",
                            "loc": ["body", extra[0]],
                            "input": None,
                            "msg": "unknown top-level field; send {records: [...], key?: str}",
                        }
                    ]
                )
            records, loc = body["records"], ("body", "records")
        elif isinstance(body, list):
            records, loc = body, ("body",)
        else:
            raise _invalid(
                [
                    {
                        "type": "missing",
                        "loc": ["body", "records"],
                        "input": None,
                        "msg": 'send {"records": [{feature: value, ...}], "key": optional sticky key}',
                    }
                ]
            )
        clean, errors = served.schema.validate(records, loc)
        if errors:
            raise _invalid(errors)
        frame, rows = await _score(request, served, clean)
        out = [{"row": r["row"], "score": r["score"], "prediction": r["prediction"]} for r in rows]
        if explain:
            try:
                from civicml.evaluation.explain import top_contributions
            except ImportError:
                return JSONResponse(
                    {"detail": "explanations are not available in this build", **_envelope(request)}, status_code=501
                )
            for i, item in enumerate(out):
                item["explanation"] = await run_in_threadpool(top_contributions, served.model, frame.iloc[[i]])
        return {**_envelope(request), "predictions": out}

    @app.post("/feedback")
    async def feedback(request: Request):
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise _invalid(
                [
                    {
                        "type": "dict_type",
                        "loc": ["body"],
                        "input": None,
                        "msg": 'send {"request_id": str, "outcome": observed label, "row": 0}',
                    }
                ]
            )
        errors = []
        rid, outcome, row = body.get("request_id"), body.get("outcome"), body.get("row", 0)
        if not isinstance(rid, str) or not rid:
            errors.append(
                {
                    "type": "string_type",
                    "loc": ["body", "request_id"],
                    "input": None,
                    "msg": "request_id of the prediction (from its response) is required",
                }
            )
        if not isinstance(row, int) or isinstance(row, bool) or row < 0:
            errors.append(
                {
                    "type": "int_type",
                    "loc": ["body", "row"],
                    "input": None,
                    "msg": "row must be a non-negative integer (default 0)",
                }
            )
        spec = state.models[CHAMPION].model.spec
        encoded: float | int | None = None
        if spec.task == "binary_classification":
            # Classes may be stored as 0.0/1.0 or as labels: match by value, then by text ("1" for 1).
            match = [
                i
                for i, c in enumerate(spec.classes)
                if isinstance(outcome, (int, float, str))
                and not isinstance(outcome, bool)
                and (outcome == c or str(outcome) == str(c))
            ]
            if not match:
                errors.append(
                    {
                        "type": "literal_error",
                        "loc": ["body", "outcome"],
                        "input": None,
                        "msg": f"outcome must be one of the model's classes {spec.classes}",
                    }
                )
            else:
                encoded = match[0]
        elif isinstance(outcome, (int, float)) and not isinstance(outcome, bool) and math.isfinite(outcome):
            encoded = float(outcome)
        else:
            errors.append(
                {"type": "float_type", "loc": ["body", "outcome"], "input": None, "msg": "outcome must be a number"}
            )
        extra = sorted(set(body) - {"request_id", "outcome", "row"})
        if extra:
            errors.append(
                {
                    "type": "extra_forbidden",
                    "loc": ["body", extra[0]],
                    "input": None,
                    "msg": "unknown field; send request_id, outcome and optionally row",
                }
            )
        if isinstance(rid, str) and rid in recent:
            request.state.arm, request.state.version = recent[rid]
        if errors:
            raise _invalid(errors)
        record = {
            "request_id": rid,
            "row": row,
            "outcome": encoded,
            "observed": outcome,
            "ts": utcnow(),
            "feedback_id": request.state.request_id,
        }
        await fb_log.write([record])
        metrics.feedback.inc()
        return {**_envelope(request), "feedback_for": rid, "accepted": True}

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def run_server(cfg: RunConfig, host: str = "127.0.0.1", port: int = 8080, workdir: str | Path | None = None) -> None:
    """Load the models (refusing on any integrity problem), then serve until SIGTERM/SIGINT.

    Raises:
        ServingError: the models cannot be loaded; nothing is served.
    """
    import uvicorn

    from civicml.storage.store import open_store

    state = load_state(cfg, Registry(open_store(cfg.storage.uri)), workdir)
    app = create_app(state)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=20)
