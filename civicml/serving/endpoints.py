"""HTTP routes: Open Inference Protocol v2, `/predict`, `/feedback`, health and metrics.

KServe's shape (kserve/protocol/rest/v2_endpoints.py): `Endpoints` holds the `DataPlane` and each
route is one small method over it; `register_routes` adds them to the app with their documentation.
`/predict` is a closure over the plane (`predict_route`) so that its `explain` parameter can name
the configured limit, with no extra call on the hot path. The request and response bodies are
documented in `/openapi.json` from `civicml.serving.models` (the record type is the champion's
contract); the endpoints parse the bodies themselves (bounded, see `limits`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from civicml.serving import models as m
from civicml.serving.dataplane import DataPlane, champion_spec, client_body_id, feedback_outcome, invalid
from civicml.serving.oip import (
    ProtocolError,
    check_request,
    refuse_binary,
    requested_output_names,
    scalar_parameters,
)
from civicml.serving.routing import CHAMPION
from civicml.serving.state import ServedModel


class Endpoints:
    """The routes other than `/predict`, each a method over one `DataPlane`.

    Args:
        plane: What the routes work on.
        flags: `flags["ready"]` is True between the app's start-up and shutdown.
    """

    def __init__(self, plane: DataPlane, flags: dict[str, bool]):
        self.plane, self.state, self.flags = plane, plane.state, flags

    async def live(self) -> dict[str, bool]:
        """The server process is up (`GET /v2/health/live`)."""
        return {"live": True}

    async def ready(self):
        """200 when the models are loaded and the store takes the log, else 400 (`GET /v2/health/ready`)."""
        reason = await self._not_ready()
        if reason:
            raise ProtocolError(f"not ready: {reason}", status=400)
        return {"ready": True}

    async def server_metadata(self) -> dict[str, Any]:
        """The v2 server metadata (`GET /v2`): no protocol extensions."""
        return {"name": "civicml", "version": "2", "extensions": []}

    async def model_metadata(self, name: str, request: Request):
        """The champion's v2 model metadata, with the routing in `parameters`."""
        return self._metadata(name, None, request)

    async def version_metadata(self, name: str, version: str, request: Request):
        """The v2 metadata of one served version."""
        return self._metadata(name, version, request)

    async def model_ready(self, name: str, request: Request):
        """Whether the named model is served and ready."""
        return await self._model_is_ready(name, None, request)

    async def version_ready(self, name: str, version: str, request: Request):
        """Whether one served version is ready."""
        return await self._model_is_ready(name, version, request)

    async def infer(self, name: str, request: Request):
        """A v2 inference request, routed between champion and challenger."""
        return await self._infer(name, None, request)

    async def infer_version(self, name: str, version: str, request: Request):
        """A v2 inference request pinned to one served version."""
        return await self._infer(name, version, request)

    async def feedback(self, request: Request):
        """The observed outcome of one row of a prediction this deployment issued."""
        plane = self.plane
        caller = plane.authenticate(request, plane.feedback_auth)
        body = await plane.body(request)
        if not isinstance(body, dict):
            raise invalid("dict_type", ["body"], 'send {"request_id": str, "outcome": observed label, "row": 0}')
        encoded, errors = feedback_outcome(champion_spec(self.state), body)
        if errors:
            raise _invalid_records(errors)
        return await plane.label(
            request, caller.source, body["request_id"], body.get("row", 0), encoded, body.get("outcome")
        )

    async def prometheus(self):
        """The server's Prometheus metrics."""
        return Response(generate_latest(self.plane.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def _not_ready(self) -> str | None:
        ok, reason = await self.plane.ready()
        if not self.flags["ready"] or not ok:
            return reason or "starting or stopping"
        return None

    def _served(self, name: str, version: str | None, request: Request) -> ServedModel:
        """The served model a v2 URL names (the champion when no version is given); 404 otherwise."""
        state = self.state
        served_versions = [x.version for x in state.models.values()]
        if name != state.model_name:
            raise ProtocolError(f"unknown model {name!r}; this server serves {state.model_name!r}", status=404)
        if version is None:
            served: ServedModel | None = state.models[CHAMPION]
        else:
            served = next((x for x in state.models.values() if x.version == version), None)
        if served is None:
            raise ProtocolError(
                f"version {version!r} of {name!r} is not served here; served versions: {served_versions} "
                f"(GET /v2/models/{name} lists them)",
                status=404,
            )
        request.state.arm, request.state.version = served.arm, served.version
        return served

    def _metadata(self, name: str, version: str | None, request: Request) -> dict[str, Any]:
        served = self._served(name, version, request)
        state, current = self.state, self.state.served
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

    async def _model_is_ready(self, name: str, version: str | None, request: Request) -> dict[str, Any]:
        self._served(name, version, request)
        reason = await self._not_ready()
        if reason:
            raise ProtocolError(f"model {name!r} is not ready: {reason}", status=400)
        return {"name": name, "ready": True}

    async def _infer(self, name: str, version: str | None, request: Request) -> JSONResponse:
        plane = self.plane
        plane.authenticate(request, plane.predict_auth)
        named = self._served(name, version, request)  # 404 before the body is read
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
            raise _invalid_records(errors)
        plane.check_rows(len(records), explain=False)
        rows, _ = await plane.score(request, served, records)
        return JSONResponse(_infer_answer(self.state.model_name, served, request, body.get("id"), rows, names))


def _infer_answer(
    model_name: str, served: ServedModel, request: Request, given: Any, rows: list[dict[str, Any]], names: list[str]
) -> dict[str, Any]:
    """The v2 inference response: the outputs asked for, in that order."""
    st = request.state
    outputs = {
        o["name"]: {**o, "shape": [len(rows)], "data": [r[o["name"]] for r in rows]} for o in _output_meta(served)
    }
    # upstream: kserve/kserve docs/predict-api/v2/required_api.md:223-224 the request's id "must be returned".
    return {
        "model_name": model_name,
        "model_version": served.version,
        "id": given if isinstance(given, str) else st.client_id or st.request_id,
        "parameters": {"arm": served.arm, "request_id": st.request_id},
        "outputs": [outputs[n] for n in names],
    }


def predict_route(plane: DataPlane) -> Callable[..., Any]:
    """The `/predict` endpoint over `plane`; its `explain` parameter documents the configured row limit."""

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
            raise _invalid_records(errors)
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

    return predict


def register_routes(
    app: FastAPI, plane: DataPlane, flags: dict[str, bool], defs: dict[str, Any]
) -> dict[str, Callable[[Request], Awaitable[Response]]]:
    """Add every route to `app`; `defs` collects the component schemas of the request bodies.

    Returns:
        The routes `direct.DirectRoutes` answers: path -> endpoint with its query parameters' defaults.
    """
    ep = Endpoints(plane, flags)
    predict = predict_route(plane)
    predict_body, feedback_body, infer_body = _bodies(plane, defs)

    def add(path: str, endpoint: Callable[..., Any], tags: list[str | Enum], method: str = "GET", **doc: Any) -> None:
        # The methods' docstrings are for readers of the code: FastAPI cuts a description at a form
        # feed, so "\f" keeps them out of /openapi.json (which stays as it was).
        app.add_api_route(path, endpoint, methods=[method], tags=tags, description="\f", **doc)

    add("/v2/health/live", ep.live, ["health"])
    # upstream: kserve/kserve docs/predict-api/v2/required_api.md:62-65 "A 200 status code indicates true and a
    # 4xx status code indicates false." (Kubernetes probes fail on any status >= 400 as well.)
    add("/v2/health/ready", ep.ready, ["health"], responses=m.errors(400))
    add("/v2", ep.server_metadata, ["v2"])
    add("/v2/models/{name}", ep.model_metadata, ["v2"], responses=m.errors(404))
    add("/v2/models/{name}/versions/{version}", ep.version_metadata, ["v2"], responses=m.errors(404))
    add("/v2/models/{name}/ready", ep.model_ready, ["v2"], responses=m.errors(400, 404))
    add("/v2/models/{name}/versions/{version}/ready", ep.version_ready, ["v2"], responses=m.errors(400, 404))
    infer_errors = m.errors(400, 401, 403, 404, 408, 413, 415, 422, 503)
    for path, endpoint in (
        ("/v2/models/{name}/infer", ep.infer),
        ("/v2/models/{name}/versions/{version}/infer", ep.infer_version),
    ):
        add(
            path,
            endpoint,
            ["v2"],
            "POST",
            response_model=m.InferResponse,
            responses=infer_errors,
            openapi_extra={"requestBody": infer_body},
        )
    add(
        "/predict",
        predict,
        ["predict"],
        "POST",
        response_model=m.PredictResponse,
        responses=m.errors(400, 401, 403, 408, 413, 422, 503),
        openapi_extra={"requestBody": predict_body},
    )
    add(
        "/feedback",
        ep.feedback,
        ["feedback"],
        "POST",
        response_model=m.FeedbackResponse,
        responses=m.errors(400, 401, 403, 404, 408, 409, 413, 422, 503),
        openapi_extra={"requestBody": feedback_body},
    )
    if plane.state.serving.metrics:
        add("/metrics", ep.prometheus, ["health"], response_class=Response)
    return {
        "/predict": functools.partial(predict, explain=False),
        "/v2/models/{name}/infer": lambda request: ep.infer(request.path_params["name"], request),
        "/v2/models/{name}/versions/{version}/infer": lambda request: ep.infer_version(
            request.path_params["name"], request.path_params["version"], request
        ),
    }


def _bodies(plane: DataPlane, defs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """OpenAPI request bodies of `/predict`, `/feedback` and the v2 infer routes (from the start-up champion)."""
    champion = plane.state.models[CHAMPION]
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
    return predict_body, feedback_body, m.json_body(m.InferRequest, defs)


def _output_meta(served: ServedModel) -> list[dict[str, Any]]:
    """The output tensors a version produces, in the order they are returned by default."""
    dtype = "INT64" if served.model.task == "binary_classification" else "FP64"
    types = {"score": "FP64", "prediction": dtype}
    return [{"name": n, "datatype": types[n], "shape": [-1]} for n in m.OUTPUT_NAMES]


def _invalid_records(errors: list[dict[str, Any]]) -> RequestValidationError:
    """A 422 carrying the validator's problems."""
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
