"""Typed request and response bodies of the model server, as they appear in `/openapi.json`.

The record type is the champion's own validator (`RecordSchema.model`, built from its data
contract), so the document says exactly which features, types, ranges and categories a
prediction accepts. Bodies are parsed by the endpoints themselves (bounded, see `limits`); these
models describe them for clients and for schemathesis.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from civicml.serving.schemas import BYTES, NUMERIC_DATATYPES

ISSUED_ID_PATTERN = r"^[0-9a-f]{32}\.[0-9a-f]{16}$"
CLIENT_ID_PATTERN = r"^[\x21-\x7e]{1,128}$"
# The output tensors every served version produces, in their default order.
OUTPUT_NAMES = ("score", "prediction")
# upstream: kserve/kserve docs/predict-api/v2/required_api.md:407 "$parameter = $string : $string | $number | $boolean"
Parameter = str | float | bool


class ErrorItem(BaseModel):
    """One problem with a request: where (`loc`), what (`type`, `msg`)."""

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: the protocol's `error` sentence, the problems (or one sentence), the request's identity."""

    error: str = Field(description="Open Inference Protocol v2 error message (one line)")
    detail: list[ErrorItem] | str
    request_id: str | None = None
    model_version: str | None = None
    arm: str | None = None


class Prediction(BaseModel):
    """One row's answer."""

    row: int
    score: float
    prediction: float | int
    explanation: list[dict[str, Any]] | None = None


class PredictResponse(BaseModel):
    """Answer of `/predict`; `request_id` is what `/feedback` needs."""

    request_id: str
    model_version: str | None
    arm: str | None
    predictions: list[Prediction]


class Tensor(BaseModel):
    """An Open Inference Protocol v2 input tensor: one column."""

    model_config = ConfigDict(extra="allow")

    name: str
    shape: list[int] = Field(min_length=1, max_length=2)
    datatype: Literal[tuple(sorted(NUMERIC_DATATYPES | {BYTES}))]  # type: ignore[valid-type]
    data: list[Any]
    parameters: dict[str, Parameter] | None = None


class InferParameters(BaseModel):
    """Request parameters: `key` keeps one caller on one arm."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Parameter]

    # Not nullable: a parameter value is a string, number or boolean (absent when there is no key).
    key: str = Field(None, description="sticky key (user or case id): same key, same arm")  # type: ignore[assignment]


class RequestOutput(BaseModel):
    """An output the request asks for; the answer carries only the outputs asked for, in this order."""

    model_config = ConfigDict(extra="forbid")

    name: Literal[OUTPUT_NAMES]  # type: ignore[valid-type]
    parameters: dict[str, Parameter] | None = None


class InferRequest(BaseModel):
    """Open Inference Protocol v2 inference request (`/v2/models/{name}/infer`)."""

    model_config = ConfigDict(extra="allow")

    id: str | None = Field(None, pattern=CLIENT_ID_PATTERN)
    parameters: InferParameters | None = None
    inputs: list[Tensor] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class OutputTensor(BaseModel):
    """A v2 output tensor."""

    name: str
    datatype: str
    shape: list[int]
    data: list[float | int]


class InferResponse(BaseModel):
    """Open Inference Protocol v2 inference response; `parameters.request_id` is for `/feedback`."""

    model_name: str
    model_version: str
    id: str
    parameters: dict[str, Any]
    outputs: list[OutputTensor]


class FeedbackResponse(BaseModel):
    """Answer of `/feedback`."""

    request_id: str
    model_version: str | None
    arm: str | None
    feedback_for: str
    accepted: bool


def predict_request(record: type[BaseModel], max_rows: int) -> type[BaseModel]:
    """`/predict` body: `{records: [...], key?}` with the champion's record type."""
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        records=(list[record], Field(min_length=1, max_length=max_rows)),  # type: ignore[valid-type]
        key=(str | None, Field(None, description="sticky key (user or case id): same key, same arm")),
    )


def feedback_request(classes: list[Any] | None) -> type[BaseModel]:
    """`/feedback` body; the outcome is one of the model's classes (classification) or a number."""
    outcome: Any = Literal[tuple(classes)] if classes else float
    return create_model(
        "FeedbackRequest",
        __config__=ConfigDict(extra="forbid"),
        request_id=(str, Field(pattern=ISSUED_ID_PATTERN, description="`request_id` of the prediction's answer")),
        outcome=(outcome, Field(description="the observed label or value")),
        row=(int, Field(0, ge=0, description="row of the prediction's request (default 0)")),
    )


def json_body(model: type[BaseModel] | Any, defs: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI `requestBody` for a model (or a `{"oneOf": [...]}` of them); component schemas go to `defs`."""
    schema = _schema(model, defs) if isinstance(model, type) else model
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    doc = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs.update(doc.pop("$defs", {}))
    defs[model.__name__] = doc
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def list_of(model: type[BaseModel], defs: dict[str, Any], max_rows: int) -> dict[str, Any]:
    """Schema of a bare JSON array of `model` (the short form of `/predict`)."""
    return {"type": "array", "items": _schema(model, defs), "minItems": 1, "maxItems": max_rows}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` entries for the 4xx/5xx answers a route gives."""
    text = {
        400: "malformed request (e.g. a Content-Length that is not a number)",
        401: "no credentials for a route that needs them",
        403: "credentials given but not valid for this route",
        404: "unknown model name or request id",
        408: "the body did not arrive within the time limit",
        409: "the prediction was labelled already (this label is recorded as a conflict)",
        413: "body larger than serving.max_body_bytes",
        415: "binary tensor data (Triton's extension) is not supported: send JSON tensors",
        422: "the body is not valid for this model (or has more rows than serving.max_rows): each problem names "
        "its field",
        503: "not served: the store cannot take the log, or the route is switched off",
    }
    return {c: {"model": ErrorResponse, "description": text[c]} for c in codes}
