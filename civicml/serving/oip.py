"""Open Inference Protocol v2 rules the endpoints apply (kserve docs/predict-api/v2/required_api.md).

Pure functions, so each rule is tested on its own and the routes stay thin:

* every error body has ``"error": "<message>"`` (civicml keeps its ``detail`` and request identity beside it);
* ``parameters`` values are strings, numbers or booleans, nothing else (request, inputs, outputs);
* the ``outputs`` a request names are the outputs returned, in that order; an unknown name is an error;
* Triton's binary tensor data extension is not implemented: such a request is refused with a message
  that says how to send JSON tensors instead (the server metadata lists no extensions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Triton's binary data extension: the JSON part's length when the body also carries raw tensor bytes.
# upstream: triton-inference-server/server docs/protocol/extension_binary_data.md ("Inference-Header-Content-Length")
BINARY_HEADER = "inference-header-content-length"
BINARY_HINT = (
    "binary tensor data (Triton's binary_data extension) is not supported by this server; send JSON tensors: "
    "with tritonclient use tensor.set_data_from_numpy(array, binary_data=False) and "
    'InferRequestedOutput(name, binary_data=False), or POST {"inputs": [{"name", "shape", "datatype", "data"}]}'
)


class ProtocolError(ValueError):
    """A request the protocol does not allow; the message says what and how to fix it."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def error_text(detail: Any) -> str:
    """One readable line for the protocol's ``error`` string from civicml's ``detail`` (text or FastAPI errors).

    A list of validation problems becomes ``"body.inputs.age.0: Input should be ...; ..."``.
    """
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for problem in detail[:10]:
            if isinstance(problem, Mapping):
                where = ".".join(str(p) for p in problem.get("loc", []))
                parts.append(f"{where}: {problem.get('msg', '')}" if where else str(problem.get("msg", "")))
            else:
                parts.append(str(problem))
        more = f"; and {len(detail) - 10} more" if len(detail) > 10 else ""
        return "; ".join(parts) + more if parts else "invalid request"
    return str(detail)


def check_parameters(params: Any, where: str = "parameters") -> dict[str, Any]:
    """Return `params` ({} when absent) after checking every value is a string, number or boolean.

    Raises:
        ProtocolError: not an object, or a value is an object, a list or null.
    """
    # upstream: kserve/kserve docs/predict-api/v2/required_api.md:407 "$parameter = $string : $string | $number ..."
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ProtocolError(f'{where} must be an object of name: value pairs, e.g. {{"key": "case-7"}}')
    for name, value in params.items():
        if not isinstance(value, (str, int, float, bool)):
            shown = "null" if value is None else type(value).__name__
            raise ProtocolError(
                f'{where}.{name} must be a string, number or boolean, got {shown}; e.g. {{"{name}": "value"}}'
            )
    return params


def refuse_binary(headers: Mapping[str, str]) -> None:
    """Refuse a body that carries binary tensor data (checked before the body is parsed as JSON).

    Raises:
        ProtocolError: 415, naming how to send JSON tensors instead.
    """
    if BINARY_HEADER in {k.lower() for k in headers}:
        raise ProtocolError(BINARY_HINT, status=415)


def check_request(body: dict[str, Any]) -> None:
    """Refuse non-scalar parameter values (request and inputs) and inputs that announce binary data.

    Raises:
        ProtocolError: a parameter value is not a string, number or boolean, or an input is binary.
    """
    check_parameters(body.get("parameters"))
    inputs = body.get("inputs")
    for i, tensor in enumerate(inputs if isinstance(inputs, list) else []):
        if not isinstance(tensor, dict):
            continue
        name = tensor.get("name", i)
        params = check_parameters(tensor.get("parameters"), f"inputs[{name!r}].parameters")
        if "binary_data_size" in params:
            raise ProtocolError(BINARY_HINT, status=415)


def scalar_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Response `parameters` with the unset (None) values left out: the protocol has no null parameter."""
    return {k: v for k, v in values.items() if v is not None}


def requested_output_names(body: dict[str, Any], available: list[str]) -> list[str]:
    """The output names to return: those the request lists (in its order), else all of `available`.

    Raises:
        ProtocolError: `outputs` is malformed or names an output the model does not produce.
    """
    # upstream: kserve/kserve docs/predict-api/v2/required_api.md:229-234 ("outputs" ... if not specified all outputs)
    requested = body.get("outputs")
    if requested is None:
        return list(available)
    if not isinstance(requested, list) or not all(isinstance(o, dict) for o in requested):
        raise ProtocolError('outputs must be a list of {"name": ...} objects, e.g. [{"name": "score"}]')
    names: list[str] = []
    for i, out in enumerate(requested):
        name = out.get("name")
        if name not in available:
            raise ProtocolError(f"outputs[{i}].name {name!r} is not an output of this model; choose from {available}")
        check_parameters(out.get("parameters"), f"outputs[{i}].parameters")
        if name not in names:
            names.append(name)
    return names
