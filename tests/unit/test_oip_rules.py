"""The Open Inference Protocol v2 rules of civicml.serving.oip, each on its own.

upstream: kserve/kserve docs/predict-api/v2/required_api.md @ aaac4e294 (v0.20.0-rc0+): lines 223-234
(request id and outputs), 337-342 (error object), 396-407 (parameters); triton-inference-server/server
docs/protocol/extension_binary_data.md (binary_data_size, binary_data, Inference-Header-Content-Length).
"""

from __future__ import annotations

import pytest

from civicml.serving.oip import (
    BINARY_HEADER,
    ProtocolError,
    check_parameters,
    check_request,
    error_text,
    refuse_binary,
    requested_output_names,
    scalar_parameters,
)

OUTPUTS = ["score", "prediction"]


# upstream: kserve/kserve docs/predict-api/v2/required_api.md:407 "$parameter = $string : $string | $number | $boolean"
@pytest.mark.parametrize("value", ["case-7", 3, 1.5, True, False, ""])
def test_parameter_values_may_be_string_number_or_bool(value):
    assert check_parameters({"p": value}) == {"p": value}


@pytest.mark.parametrize(("value", "shown"), [(None, "null"), ([1], "list"), ({"a": 1}, "dict")])
def test_other_parameter_values_are_refused(value, shown):
    with pytest.raises(ProtocolError, match=rf"parameters\.p must be a string, number or boolean, got {shown}"):
        check_parameters({"p": value})


def test_parameters_must_be_an_object():
    assert check_parameters(None) == {}
    with pytest.raises(ProtocolError, match="must be an object"):
        check_parameters(["key", "x"])


def test_parameters_are_checked_on_the_request_and_each_input():
    check_request({"parameters": {"key": "c-1"}, "inputs": [{"name": "age", "parameters": {"unit": "y"}}]})
    with pytest.raises(ProtocolError, match=r"inputs\['age'\]\.parameters\.unit"):
        check_request({"inputs": [{"name": "age", "parameters": {"unit": ["y"]}}]})
    with pytest.raises(ProtocolError, match=r"^parameters\.key"):
        check_request({"parameters": {"key": {"id": 1}}, "inputs": []})


def test_unset_response_parameters_are_left_out():
    assert scalar_parameters({"champion": "v1", "challenger": None, "share": 0.0}) == {"champion": "v1", "share": 0.0}


# upstream: kserve/kserve docs/predict-api/v2/required_api.md:229-234 (outputs: if not specified, all outputs)
def test_requested_outputs_are_returned_in_request_order():
    assert requested_output_names({}, OUTPUTS) == OUTPUTS
    assert requested_output_names({"outputs": [{"name": "prediction"}]}, OUTPUTS) == ["prediction"]
    both = [{"name": "prediction"}, {"name": "score"}, {"name": "prediction"}]
    assert requested_output_names({"outputs": both}, OUTPUTS) == ["prediction", "score"]


@pytest.mark.parametrize(
    ("outputs", "words"),
    [
        ([{"name": "proba"}], "outputs[0].name 'proba' is not an output of this model; choose from"),
        ("score", "must be a list"),
        ([{"name": "score", "parameters": {"x": [1]}}], "outputs[0].parameters.x"),
    ],
)
def test_bad_output_requests_are_refused(outputs, words):
    with pytest.raises(ProtocolError) as info:
        requested_output_names({"outputs": outputs}, OUTPUTS)
    assert words in str(info.value) and info.value.status == 400


def test_binary_tensor_data_is_refused_with_the_way_to_json():
    refuse_binary({"Content-Type": "application/json"})
    for call in (
        lambda: refuse_binary({"Inference-Header-Content-Length": "120"}),
        lambda: check_request({"inputs": [{"name": "age", "parameters": {"binary_data_size": 8}}]}),
    ):
        with pytest.raises(ProtocolError) as info:
            call()
        assert info.value.status == 415 and "binary_data=False" in str(info.value)
    assert BINARY_HEADER == "inference-header-content-length"


def test_error_text_is_one_line_from_any_detail():
    assert error_text("unknown model 'x'") == "unknown model 'x'"
    problems = [{"loc": ["body", "inputs", "age", 0], "msg": "Input should be a valid number"}, {"msg": "bad"}]
    assert error_text(problems) == "body.inputs.age.0: Input should be a valid number; bad"
    many = [{"loc": ["body", i], "msg": "m"} for i in range(12)]
    assert error_text(many).endswith("; and 2 more")
