"""HTTP routes: Open Inference Protocol v2, `/predict`, `/feedback`, health and metrics.

Each route is a few lines over the `DataPlane`; the request and response bodies are documented in
`/openapi.json` from `civicml.serving.models` (the record type is the champion's contract).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from civicml.serving import models as m
from civicml.serving.dataplane import (
    DataPlane,
    Refused,
    champion_spec,
    client_body_id,
    feedback_outcome,
    invalid,
)
from civicml.serving.oip import (
    ProtocolError,
    check_request,
    refuse_binary,
    requested_output_names,
    scalar_parameters,
)
from civicml.serving.routing import CHAMPION
from civicml.serving.state import ServedModel


def register_routes(app: FastAPI, plane: DataPlane, flags: dict[str, bool], defs: dict[str, Any]) -> None:
    """Add every route to `app`; `defs` collects the component schemas of the request bodies."""
    state = plane.state
    champion = state.models[CHAMPION]
    record = champion.schema.model
    spec = champion.model.spec  # documents the start-up champion's classes; checks use the current one
    predict_body = m.json_body(
        {
            "oneOf": [
                m._schema(m.predict_request(record, plane.cfg.max_rows), defs),
                m.list_of(record, defs, plane.cfg.max_rows),
            ]
        },
        defs,
    )
    feedback_body = m.json_body(
        m.feedback_request(spec.classes if spec.task == "binary_classification" else None), defs
    )
    infer_body = m.json_body(m.InferRequest, defs)

    @app.get("/v2/health/live", tags=["health"])
    async def live() -> dict[str, bool]:
        return {"live": True}

    async def not_ready() -> str | None:
        ok, reason = await plane.ready()
        if not flags["ready"] or not ok:
            return reason or "starting or stopping"
        return None

    # upstream: kserve/kserve docs/predict-api/v2/required_api.md:62-65 "A 200 status code indicates true and a
    # 4xx status code indicates false." (Kubernetes probes fail on any status >= 400 as well.)
    @app.get("/v2/health/ready", tags=["health"], responses=m.errors(400))
    async def ready():
        reason = await not_ready()
        if reason:
            raise ProtocolError(f"not ready: {reason}", status=400)
        return {"ready": True}

    @app.get("/v2", tags=["v2"])
    async def server_metadata() -> dict[str, Any]:
        return {"name": "civicml", "version": "2", "extensions": []}

    def model(name: str, version: str | None, request: Request) -> ServedModel:
        """The served model a v2 URL names (the champion when no version is given); 404 otherwise."""
        served_versions = [x.version for x in state.models.values()]
        if name != state.model_name:
            raise ProtocolError(f"unknown model {name!r}; this server serves {state.model_name!r}", status=404)
        served = state.models[CHAMPION] if version is None else by_version(version)
        if served is None:
            raise ProtocolError(
                f"version {version!r} of {name!r} is not served here; served versions: {served_versions} "
                f"(GET /v2/models/{name} lists them)",
                status=404,
            )
        request.state.arm, request.state.version = served.arm, served.version
        return served

    def by_version(version: str) -> ServedModel | None:
        return next((x for x in state.models.values() if x.version == version), None)

    async def metadata(name: str, version: str | None, request: Request) -> dict[str, Any]:
        served = model(name, version, request)
        current = state.served
        # upstream: kserve/open-inference-protocol specification/protocol/inference_rest.md:150-163 @ d49cc23
        # "versions": the versions that may be requested explicitly (each served arm's version); civicml's
        # `parameters` follow the protocol's $parameter rule (:376): flat string, number or boolean values only.
        return {
            "name": state.model_name,
            "versions": [x.version for x in current.models.values()] if version is None else [served.version],
            "platform": f"civicml-{served.model.family}",
            "inputs": served.schema.metadata_inputs(),
            "outputs": _output_meta(served),
            "parameters": scalar_parameters(
                {
                    "arm": served.arm,
                    "champion": current.routing.champion,
                    "challenger": current.routing.challenger,
                    "challenger_share": current.routing.effective_share,
                    "served_versions": ",".join(x.version for x in current.models.values()),
                    "loaded_at": current.loaded_at,
                    "refresh_seconds": state.serving.refresh_seconds,
                    "reload_error": state.reload_error,
                }
            ),
        }

    async def model_is_ready(name: str, version: str | None, request: Request) -> dict[str, Any]:
        model(name, version, request)
        reason = await not_ready()
        if reason:
            raise ProtocolError(f"model {name!r} is not ready: {reason}", status=400)
        return {"name": name, "ready": True}

    @app.get("/v2/models/{name}", tags=["v2"], responses=m.errors(404))
    async def model_metadata(name: str, request: Request):
        return await metadata(name, None, request)

    @app.get("/v2/models/{name}/versions/{version}", tags=["v2"], responses=m.errors(404))
    async def version_metadata(name: str, version: str, request: Request):
        return await metadata(name, version, request)

    @app.get("/v2/models/{name}/ready", tags=["v2"], responses=m.errors(400, 404))
    async def model_ready(name: str, request: Request):
        return await model_is_ready(name, None, request)

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"], responses=m.errors(400, 404))
    async def version_ready(name: str, version: str, request: Request):
        return await model_is_ready(name, version, request)

    infer_doc = {
        "tags": ["v2"],
        "response_model": m.InferResponse,
        "responses": m.errors(400, 401, 403, 404, 408, 413, 415, 422, 503),
        "openapi_extra": {"requestBody": infer_body},
    }

    @app.post("/v2/models/{name}/infer", **infer_doc)
    async def infer(name: str, request: Request):
        return await run_infer(name, None, request)

    @app.post("/v2/models/{name}/versions/{version}/infer", **infer_doc)
    async def infer_version(name: str, version: str, request: Request):
        return await run_infer(name, version, request)

    async def run_infer(name: str, version: str | None, request: Request) -> JSONResponse:
        plane.authenticate(request, plane.predict_auth)
        named = model(name, version, request)  # 404 before the body is read
        pinned = named if version is not None else None
        refuse_binary(request.headers)
        try:
            body = await plane.body(request)
        finally:
            plane.route(request, pinned=pinned)
        if not isinstance(body, dict):
            raise invalid("dict_type", ["body"], "body must be a v2 inference request object {id?, inputs: [...]}")
        client_body_id(request, body)
        check_request(body)
        params = body.get("parameters") or {}
        served = plane.route(request, params.get("key"), pinned=pinned)
        names = requested_output_names(body, [o["name"] for o in _output_meta(served)])
        records, errors = served.schema.tensors_to_records(body.get("inputs"), loc=("body", "inputs"))
        if errors:
            raise m_validation(errors)
        plane.check_rows(len(records), explain=False)
        rows, _ = await plane.score(request, served, records)
        st = request.state
        outputs = {
            o["name"]: {**o, "shape": [len(rows)], "data": [r[o["name"]] for r in rows]} for o in _output_meta(served)
        }
        # upstream: kserve/kserve docs/predict-api/v2/required_api.md:223-224 the request's id "must be returned".
        given = body.get("id")
        return JSONResponse(
            {
                "model_name": state.model_name,
                "model_version": served.version,
                "id": given if isinstance(given, str) else st.client_id or st.request_id,
                "parameters": {"arm": served.arm, "request_id": st.request_id},
                "outputs": [outputs[n] for n in names],
            }
        )

    @app.post(
        "/predict",
        tags=["predict"],
        response_model=m.PredictResponse,
        responses=m.errors(400, 401, 403, 408, 413, 422, 503),
        openapi_extra={"requestBody": predict_body},
    )
    async def predict(
        request: Request,
        explain: bool = Query(
            False,
            description=f"add each row's top feature contributions; at most {plane.cfg.max_explain_rows} rows "
            "(serving.max_explain_rows)",
        ),
    ):
        plane.authenticate(request, plane.predict_auth)
        try:
            body = await plane.body(request)
        finally:
            plane.route(request)
        served = plane.route(request, body.get("key") if isinstance(body, dict) else None)
        records, loc = _records(body)
        if isinstance(records, list):
            plane.check_rows(len(records), explain)
        clean, errors = served.schema.validate(records, loc)
        if errors:
            raise m_validation(errors)
        rows, explanations = await plane.score(request, served, clean, explain=explain)
        out = [{"row": r["row"], "score": r["score"], "prediction": r["prediction"]} for r in rows]
        for item, exp in zip(out, explanations or []):
            item["explanation"] = exp
        st = request.state
        # JSONResponse, not a dict through response_model: the rows are built from the logged values already
        # (PredictResponse documents the shape); re-validating them cost more than scoring a row.
        return JSONResponse(
            {"request_id": st.request_id, "model_version": st.version, "arm": st.arm, "predictions": out}
        )

    @app.post(
        "/feedback",
        tags=["feedback"],
        response_model=m.FeedbackResponse,
        responses=m.errors(400, 401, 403, 404, 408, 409, 413, 422, 503),
        openapi_extra={"requestBody": feedback_body},
    )
    async def feedback(request: Request):
        caller = plane.authenticate(request, plane.feedback_auth)
        body = await plane.body(request)
        if not isinstance(body, dict):
            raise invalid("dict_type", ["body"], 'send {"request_id": str, "outcome": observed label, "row": 0}')
        encoded, errors = feedback_outcome(champion_spec(state), body)
        rid, row = body.get("request_id"), body.get("row", 0)
        if errors:
            raise m_validation(errors)
        return await _label(plane, request, caller.source, rid, row, encoded, body.get("outcome"))

    if state.serving.metrics:

        @app.get("/metrics", tags=["health"], response_class=Response)
        async def prometheus():
            return Response(generate_latest(plane.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _output_meta(served: ServedModel) -> list[dict[str, Any]]:
    """The output tensors a version produces, in the order they are returned by default."""
    dtype = "INT64" if served.model.task == "binary_classification" else "FP64"
    types = {"score": "FP64", "prediction": dtype}
    return [{"name": n, "datatype": types[n], "shape": [-1]} for n in m.OUTPUT_NAMES]


def m_validation(errors: list[dict[str, Any]]):
    """A 422 carrying the validator's problems."""
    from fastapi.exceptions import RequestValidationError

    return RequestValidationError(errors)


def _records(body: Any) -> tuple[Any, tuple[Any, ...]]:
    if isinstance(body, dict) and body.get("key") is not None and not isinstance(body["key"], str):
        raise invalid("string_type", ["body", "key"], "key must be a string (a user or case id), e.g. case-1234")
    if isinstance(body, dict) and "records" in body:
        extra = sorted(set(body) - {"records", "key"})
        if extra:
            raise invalid(
                "extra_forbidden", ["body", extra[0]], "unknown top-level field; send {records: [...], key?: str}"
            )
        return body["records"], ("body", "records")
    if isinstance(body, list):
        return body, ("body",)
    raise invalid(
        "missing", ["body", "records"], 'send {"records": [{feature: value, ...}], "key": optional sticky key}'
    )


async def _label(plane: DataPlane, request: Request, source: str, rid: str, row: int, encoded: Any, observed: Any):
    """Record one label for a prediction this deployment issued; a second label is recorded as a conflict (409)."""
    if not plane.issuer.issued(rid):
        raise Refused(404, f"request id {rid!r} was not issued by this deployment; use the request_id of a prediction")
    known = plane.recent.get(rid)
    if known is not None:
        request.state.arm, request.state.version = known[0], known[1]
        if row >= known[2]:
            raise Refused(404, f"prediction {rid} has {known[2]} row(s); there is no row {row} to label")
    first = plane.labelled.get((rid, row), _MISSING)
    record = {
        "request_id": rid,
        "row": row,
        "outcome": encoded,
        "observed": observed,
        "ts": _now(),
        "feedback_id": request.state.request_id,
        "source": source,
        "relabel": first is not _MISSING,
    }
    await plane.fb_log.write([record])
    if first is not _MISSING:
        plane.metrics.feedback.labels("conflict").inc()
        raise Refused(
            409,
            f"prediction {rid} row {row} was labelled already (outcome {first!r}); this second label is recorded "
            "as a conflict and not counted",
        )
    plane.labelled[(rid, row)] = encoded
    while len(plane.labelled) > 100_000:
        plane.labelled.popitem(last=False)
    plane.metrics.feedback.labels("accepted").inc()
    st = request.state
    return {
        "request_id": st.request_id,
        "model_version": getattr(st, "version", None),
        "arm": getattr(st, "arm", None),
        "feedback_for": rid,
        "accepted": True,
    }


_MISSING = object()


def _now() -> str:
    from civicml.storage.registry import utcnow

    return utcnow()
