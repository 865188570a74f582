"""HTTP model server: wires state, data plane, routes, metrics and limits into one FastAPI app.

`load_state` (in `state`) loads and verifies the models before the port is bound; `create_app`
builds the app: pure ASGI middlewares for request ids/metrics (`metrics.RequestContext`), body
limits (`limits.BodyLimits`) and the direct way to `/predict` (`direct.DirectRoutes`, past FastAPI's
router), the routes (`endpoints`) over a `DataPlane`, and an OpenAPI document
that describes every request body and 4xx answer. `/metrics` and `/docs` follow `serving.metrics`
and `serving.docs` in the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import logging
import logging.config
import math
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from civicml.config import RunConfig
from civicml.serving.dataplane import DataPlane, register_errors
from civicml.serving.direct import DirectRoutes
from civicml.serving.endpoints import register_routes
from civicml.serving.limits import BodyLimits
from civicml.serving.metrics import RequestContext, ServerMetrics
from civicml.serving.predlog import FEEDBACK, PREDICTIONS, BatchLog
from civicml.serving.reload import Reloader, describe
from civicml.serving.state import ServedModel, ServingError, ServingState, load_state
from civicml.storage.registry import Registry

__all__ = ["ServedModel", "ServingError", "ServingState", "create_app", "load_state", "run_server"]

log = logging.getLogger("civicml.serving")


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Echoed input made JSON-safe: Python's parser accepts NaN/Infinity/1e999, JSON output does not."""
    if depth > 20:
        return "..."
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**300 else f"<integer with {len(str(abs(value)))} digits>"
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in value]
    return repr(value)


def create_app(state: ServingState) -> FastAPI:
    """Build the FastAPI app around a loaded `ServingState`."""
    cfg = state.serving
    metrics = ServerMetrics()
    early = state.log_ack == "early"
    pred_log = BatchLog(
        state.registry.store, PREDICTIONS, state.server_id, state.flush_records, state.flush_interval, early_ack=early
    )
    fb_log = BatchLog(
        state.registry.store, FEEDBACK, state.server_id, state.flush_records, state.flush_interval, early_ack=early
    )
    plane = DataPlane(state, pred_log, fb_log, metrics)
    flags = {"ready": False}

    reloader = Reloader(state, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await pred_log.start()
        await fb_log.start()
        refresher = asyncio.create_task(reloader.run())
        flags["ready"] = True
        log.info(
            "serving %s: %s; following routing changes every %g s",
            state.model_name,
            describe(state.served),
            cfg.refresh_seconds,
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

    docs: dict[str, Any] = {} if cfg.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title=f"civicml model server: {state.model_name}", lifespan=lifespan, **docs)
    app.state.serving = state
    app.state.plane = plane
    app.state.logs = {PREDICTIONS: pred_log, FEEDBACK: fb_log}
    app.state.metrics = metrics
    app.state.reloader = reloader
    register_errors(app, plane, _json_safe)
    defs: dict[str, Any] = {}
    direct = register_routes(app, plane, flags, defs)
    _document(app, defs)
    # add_middleware puts the last one outermost: request context wraps the limits, which wrap the direct routes.
    app.add_middleware(DirectRoutes, owner=app, handlers=direct)
    app.add_middleware(BodyLimits, max_body_bytes=cfg.max_body_bytes, body_timeout_seconds=cfg.body_timeout_seconds)
    app.add_middleware(RequestContext, metrics=metrics, issuer=plane.issuer)
    return app


def _document(app: FastAPI, defs: dict[str, Any]) -> None:
    """OpenAPI with the request-body schemas the routes parse themselves."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version="2", routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(defs)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def server_log_config() -> dict[str, Any]:
    """uvicorn's own logging config, with the `civicml` loggers on its stderr handler at INFO.

    Why: uvicorn configures only its own loggers, so without this the reload, routing and
    prediction-log lines of a running server are never shown (warnings only, unformatted, through
    logging's last-resort handler). One format for both keeps `kubectl logs` readable.
    """
    # upstream: encode/uvicorn uvicorn/config.py:83-113 (LOGGING_CONFIG), :387-426 (configure_logging) @ 0.54.0
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["civicml"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def freeze_heap() -> int:
    """Collect, then move every object alive now out of the cyclic collector's reach; return how many.

    Why: the server process holds ~170k long-lived container objects (FastAPI, pydantic, pandas,
    XGBoost and the loaded models). A full collection walks all of them: ~100 ms on this machine's
    cores with the event loop stopped (measured with `gc.callbacks` in `civicml serve`). Full
    collections are rare once traffic runs (none in a 22 s benchmark run), but each one that comes
    in a long-lived server holds every request in flight; frozen, the same collection takes well
    under 1 ms. Frozen objects are still freed by reference counting; only reference cycles among
    them are never collected. A model set loaded later by a routing switch is not frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def run_server(cfg: RunConfig, host: str = "127.0.0.1", port: int = 8080, workdir: str | Path | None = None) -> None:
    """Load the models (refusing on any integrity problem), then serve until SIGTERM/SIGINT.

    Raises:
        ServingError: the models cannot be loaded; nothing is served.
    """
    import uvicorn

    from civicml.storage.store import open_store

    log_config = server_log_config()
    # Before loading, so what `load_state` says about the models is shown; uvicorn applies it again.
    logging.config.dictConfig(log_config)
    state = load_state(cfg, Registry(open_store(cfg.storage.uri), project=cfg.name), workdir)
    app = create_app(state)
    # A server process, not an app in a test: the heap it has now lives as long as it does.
    log.info("%d start-up objects frozen out of the cyclic collector", freeze_heap())
    uvicorn.run(app, host=host, port=port, log_config=log_config, log_level="info", timeout_graceful_shutdown=20)
