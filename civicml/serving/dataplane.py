"""The data plane the routes work on (KServe's shape): scoring, logging, callers, issued ids, errors.

Every body is read through the limits middleware and parsed by `limits.parse_json`; records are
validated by the served version's `RecordSchema`. A prediction is acknowledged only after the log
holds it; work stops when the client has gone (explanations are computed row by row and checked
between rows).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from civicml.serving.auth import Authenticator, Caller, IdIssuer, valid_client_id
from civicml.serving.limits import BodyError, parse_json
from civicml.serving.metrics import ServerMetrics
from civicml.serving.oip import ProtocolError, error_text
from civicml.serving.predlog import BatchLog, LogUnavailable
from civicml.serving.routing import CHAMPION
from civicml.serving.state import ServedModel, ServingState, StoreHealth
from civicml.storage.registry import utcnow

log = logging.getLogger("civicml.serving")

KEY_HEADER = "X-Civicml-Key"
RECENT_LIMIT = 100_000
# Requests of at most this many rows are scored on the event loop (see `DataPlane.score`).
INLINE_ROWS = 32
_MISSING = object()


def invalid(kind: str, loc: list[Any], msg: str) -> RequestValidationError:
    """A 422 with one problem in FastAPI's error format."""
    return RequestValidationError([{"type": kind, "loc": loc, "msg": msg, "input": None}])


class TooMany(Exception):
    """More rows than the server takes in one request (422, like any other `maxItems` of the body schema)."""


class Refused(Exception):
    """A caller that is not allowed (401/403/503) or a request id that was not issued (404/409)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


class ClientGone(Exception):
    """The client disconnected; the rest of the work is dropped."""


class DataPlane:
    """What the routes work on: loaded models, logs, metrics, callers' checks and the issued-id book."""

    def __init__(self, state: ServingState, pred_log: BatchLog, fb_log: BatchLog, metrics: ServerMetrics):
        self.state = state
        self.cfg = state.serving
        self.pred_log, self.fb_log, self.metrics = pred_log, fb_log, metrics
        self.issuer = IdIssuer(self.cfg)
        self.predict_auth = Authenticator(self.cfg.predict_auth, "predict")
        self.feedback_auth = Authenticator(self.cfg.feedback_auth, "feedback")
        self.health = StoreHealth(state.registry, state.server_id, self.cfg.readiness_probe_seconds)
        # request id -> (arm, version, rows); (request id, row) -> first outcome. Bounded, per process.
        self.recent: OrderedDict[str, tuple[str, str, int]] = OrderedDict()
        self.labelled: OrderedDict[tuple[str, int], Any] = OrderedDict()

    def authenticate(self, request: Request, auth: Authenticator) -> Caller:
        caller = auth.identify({k.lower(): v for k, v in request.headers.items()})
        if not caller.allowed:
            raise Refused(caller.status, caller.reason)
        return caller

    def route(self, request: Request, body_key: Any = None, pinned: ServedModel | None = None) -> ServedModel:
        """The arm that serves this request (sticky by key), or `pinned` when the URL names a version."""
        st = request.state
        key = request.headers.get(KEY_HEADER) or (body_key if isinstance(body_key, str) and body_key else None)
        served = pinned or self.state.arm_for(key or st.client_id or st.request_id)
        st.arm, st.version, st.key = served.arm, served.version, key
        return served

    async def body(self, request: Request) -> Any:
        try:
            return parse_json(await request.body())
        except BodyError as err:
            raise RequestValidationError(
                [{"type": err.kind, "loc": ["body", err.pos], "msg": err.msg, "input": None}]
            ) from None

    def check_rows(self, n: int, explain: bool) -> None:
        if n > self.cfg.max_rows:
            raise TooMany(f"{n} rows in one request; the limit is {self.cfg.max_rows} (serving.max_rows): send batches")
        if explain and n > self.cfg.max_explain_rows:
            raise TooMany(
                f"{n} rows with explain=true; the limit is {self.cfg.max_explain_rows} (serving.max_explain_rows): "
                "explain fewer rows per request"
            )

    async def score(self, request: Request, served: ServedModel, records: list[dict], explain: bool = False):
        """Score, optionally explain, log (the acknowledgement) and return the logged rows."""
        model, scorer = served.model, served.scorer

        def run():
            score = scorer.score(records)
            return score, scorer.labels(score)

        if len(records) <= INLINE_ROWS and not explain:
            # A few rows score in well under a millisecond: a thread hop (or a disconnect probe, which
            # costs as much as the prediction) would cost more than it saves.
            score, pred = run()
        else:
            if await request.is_disconnected():
                raise ClientGone()
            score, pred = await run_in_threadpool(run)
        explanations = await self._explain(request, served, records) if explain else None
        ts, st = utcnow(), request.state
        rows = [
            {
                "request_id": st.request_id,
                "client_request_id": st.client_id,
                "row": i,
                "key": st.key,
                "arm": served.arm,
                "version": served.version,
                "ts": ts,
                "features": rec,
                "score": _finite(float(score[i])),
                "prediction": int(pred[i]) if model.task == "binary_classification" else _finite(float(pred[i])),
            }
            for i, rec in enumerate(records)
        ]
        try:
            await self.pred_log.write(rows)
        except LogUnavailable as err:
            self.health.mark(False, str(err))
            raise
        self.health.mark(True)
        self.metrics.predictions.labels(served.arm, served.version).inc(len(rows))
        self.recent[st.request_id] = (served.arm, served.version, len(rows))
        while len(self.recent) > RECENT_LIMIT:
            self.recent.popitem(last=False)
        return rows, explanations

    async def _explain(self, request: Request, served: ServedModel, records: list[dict]) -> list[Any]:
        from civicml.evaluation.explain import top_contributions

        frame = pd.DataFrame.from_records(records, columns=list(records[0]))
        out = []
        for i in range(len(frame)):
            if await request.is_disconnected():
                raise ClientGone()
            items = await run_in_threadpool(top_contributions, served.model, frame.iloc[[i]])
            out.append([{k: _finite(v) for k, v in item.items()} for item in items])
        return out

    async def label(self, request: Request, source: str, rid: str, row: int, encoded: Any, observed: Any):
        """Record one label for a prediction this deployment issued; a second label is recorded as a conflict (409)."""
        if not self.issuer.issued(rid):
            raise Refused(
                404, f"request id {rid!r} was not issued by this deployment; use the request_id of a prediction"
            )
        known = self.recent.get(rid)
        if known is not None:
            request.state.arm, request.state.version = known[0], known[1]
            if row >= known[2]:
                raise Refused(404, f"prediction {rid} has {known[2]} row(s); there is no row {row} to label")
        first = self.labelled.get((rid, row), _MISSING)
        record = {
            "request_id": rid,
            "row": row,
            "outcome": encoded,
            "observed": observed,
            "ts": utcnow(),
            "feedback_id": request.state.request_id,
            "source": source,
            "relabel": first is not _MISSING,
        }
        await self.fb_log.write([record])
        if first is not _MISSING:
            self.metrics.feedback.labels("conflict").inc()
            raise Refused(
                409,
                f"prediction {rid} row {row} was labelled already (outcome {first!r}); this second label is recorded "
                "as a conflict and not counted",
            )
        self.labelled[(rid, row)] = encoded
        while len(self.labelled) > RECENT_LIMIT:
            self.labelled.popitem(last=False)
        self.metrics.feedback.labels("accepted").inc()
        st = request.state
        return {
            "request_id": st.request_id,
            "model_version": getattr(st, "version", None),
            "arm": getattr(st, "arm", None),
            "feedback_for": rid,
            "accepted": True,
        }

    async def ready(self) -> tuple[bool, str]:
        return await asyncio.to_thread(self.health.check)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: an explanation of an extreme input reports those as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def feedback_outcome(spec, body: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Encode and check a feedback body; returns (encoded outcome, problems)."""
    errors = []
    rid, outcome, row = body.get("request_id"), body.get("outcome"), body.get("row", 0)
    if isinstance(row, float) and row.is_integer():
        row = int(row)  # JSON has one number type: 3.0 is the integer 3
        body["row"] = row
    if not isinstance(rid, str) or not rid:
        errors.append(_err("string_type", "request_id", "request_id of the prediction (from its response) is required"))
    if not isinstance(row, int) or isinstance(row, bool) or row < 0:
        errors.append(_err("int_type", "row", "row must be a non-negative integer (default 0)"))
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
        if match:
            encoded = match[0]
        else:
            errors.append(
                _err("literal_error", "outcome", f"outcome must be one of the model's classes {spec.classes}")
            )
    elif isinstance(outcome, (int, float)) and not isinstance(outcome, bool) and math.isfinite(outcome):
        encoded = float(outcome)
    else:
        errors.append(_err("float_type", "outcome", "outcome must be a number"))
    extra = sorted(set(body) - {"request_id", "outcome", "row"})
    if extra:
        errors.append(_err("extra_forbidden", extra[0], "unknown field; send request_id, outcome and optionally row"))
    return encoded, errors


def _err(kind: str, field: str, msg: str) -> dict[str, Any]:
    return {"type": kind, "loc": ["body", field], "input": None, "msg": msg}


def client_body_id(request: Request, body: Any) -> None:
    """Take a v2 body `id` as the client's request id (refused with 422 when unsafe to echo or log)."""
    given = body.get("id") if isinstance(body, dict) else None
    if given is None:
        return
    if not isinstance(given, str) or not valid_client_id(given):
        raise invalid(
            "string_pattern_mismatch",
            ["body", "id"],
            "id must be 1-128 printable ASCII characters (no spaces or control characters), e.g. case-1234",
        )
    if request.state.client_id is None:
        request.state.client_id = given


def champion_spec(state: ServingState):
    """The feature spec feedback is checked against."""
    return state.models[CHAMPION].model.spec


def register_errors(app: FastAPI, plane: DataPlane, json_safe) -> None:
    """Exception handlers: every 4xx/5xx carries the request's identity (envelope)."""
    from civicml.serving.limits import BodyTimeout, BodyTooLarge

    def envelope(request: Request) -> dict[str, Any]:
        st = request.state
        return {
            "request_id": st.request_id,
            "model_version": getattr(st, "version", None),
            "arm": getattr(st, "arm", None),
        }

    def answer(request: Request, status: int, detail: Any) -> JSONResponse:
        # upstream: kserve/kserve docs/predict-api/v2/required_api.md:337-340 {"error": <error message string>}
        return JSONResponse({"error": error_text(detail), "detail": detail, **envelope(request)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return answer(request, 422, json_safe(list(exc.errors())))

    @app.exception_handler(LogUnavailable)
    async def _log_down(request: Request, exc: LogUnavailable):
        return answer(request, 503, f"prediction not served: {exc}")

    @app.exception_handler(BodyTooLarge)
    async def _too_large(request: Request, exc: BodyTooLarge):
        return answer(request, 413, [{"type": "too_long", "loc": ["body"], "msg": str(exc), "input": None}])

    @app.exception_handler(TooMany)
    async def _too_many(request: Request, exc: TooMany):
        return answer(request, 422, [{"type": "too_long", "loc": ["body"], "msg": str(exc), "input": None}])

    @app.exception_handler(BodyTimeout)
    async def _timeout(request: Request, exc: BodyTimeout):
        return answer(request, 408, [{"type": "timeout", "loc": ["body"], "msg": str(exc), "input": None}])

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        response = answer(request, exc.status, str(exc))
        if headers:
            response.headers.update(headers)
        return response

    @app.exception_handler(ProtocolError)
    async def _protocol(request: Request, exc: ProtocolError):
        return answer(request, exc.status, str(exc))

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone):
        plane.metrics.cancelled.inc()
        # Nobody reads this; 499 is what proxies log for "client closed request".
        return answer(request, 499, "client closed the request; work stopped")
