"""Issue 17 item 14: the model server speaks the Open Inference Protocol v2 as a real client expects.

The client is Triton's `tritonclient.http` (what KServe and Triton users call) over real HTTP on
loopback; raw `httpx` requests only where the client cannot send the bad input. The rules are kserve's
docs/predict-api/v2/required_api.md (cited per test, lines as of kserve/kserve aaac4e294, v0.20.0-rc0+).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tritonclient.http as triton
from serving_support import ServerThread, build_registry, demo_records, serving_env
from tritonclient.utils import InferenceServerException

from civicml.config import ServingConfig
from civicml.data.demo import CATEGORICAL, NUMERIC
from civicml.serving.app import create_app, load_state
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

pytestmark = pytest.mark.slow

DOC = "kserve/kserve docs/predict-api/v2/required_api.md"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serving_env():
        cfg, reg, champion, challenger = build_registry(tmp_path_factory.mktemp("oip"))
        with ServerThread(create_app(load_state(cfg, reg))) as http:
            client = triton.InferenceServerClient(url=f"127.0.0.1:{http.base_url.port}", network_timeout=60)
            yield cfg, champion, challenger, client, http, reg
            client.close()


def test_not_ready_is_4xx_through_the_client(served, tmp_path):
    # upstream: kserve/kserve docs/predict-api/v2/required_api.md:62-65 "a 4xx status code indicates false";
    # :75-86 server ready / model ready. Readiness follows the store (the server cannot log predictions).
    cfg, reg = served[0], served[5]
    root = tmp_path / "store"
    shutil.copytree(reg.store.root, root, ignore=shutil.ignore_patterns("logs"))
    cfg = cfg.model_copy(update={"serving": ServingConfig(readiness_probe_seconds=0)})
    with ServerThread(create_app(load_state(cfg, Registry(LocalStore(root)), tmp_path / "work"))) as http:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{http.base_url.port}", network_timeout=60)
        assert client.is_server_ready() and client.is_model_ready(cfg.name)
        shutil.rmtree(root / "logs", ignore_errors=True)
        (root / "logs").write_text("blocked")  # the one place the server writes can no longer take writes
        assert client.is_server_live()
        assert client.is_server_ready() is False and client.is_model_ready(cfg.name) is False
        for path in ("/v2/health/ready", f"/v2/models/{cfg.name}/ready"):
            r = http.get(path)
            assert r.status_code == 400 and "not ready" in r.json()["error"], r.text
        client.close()


def _inputs(n: int = 3, binary: bool = False) -> list[triton.InferInput]:
    """One tensor per feature column, JSON tensors unless `binary` (Triton's extension)."""
    recs, _ = demo_records(n)
    out = []
    for col in NUMERIC + CATEGORICAL:
        if col in NUMERIC:
            tensor = triton.InferInput(col, [n], "FP64")
            tensor.set_data_from_numpy(np.array([r[col] for r in recs], dtype=np.float64), binary_data=binary)
        else:
            tensor = triton.InferInput(col, [n], "BYTES")
            tensor.set_data_from_numpy(np.array([str(r[col]) for r in recs], dtype=object), binary_data=binary)
        out.append(tensor)
    return out


def _refused(call) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def test_health_and_metadata_through_a_real_client(served):
    # upstream: kserve/kserve docs/predict-api/v2/required_api.md:62-65 "A 200 status code indicates true and a
    # 4xx status code indicates false."; :97-108 server metadata; :141-155 model metadata.
    cfg, champion, challenger, client, http, _ = served
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(cfg.name)
    r = http.get("/v2/models/no-such-model/ready")
    assert 400 <= r.status_code < 500 and "no-such-model" in r.json()["error"], r.text
    assert client.is_model_ready("no-such-model") is False
    meta = client.get_model_metadata(cfg.name)
    assert meta["name"] == cfg.name and {champion, challenger} <= set(meta["versions"])
    assert sorted(i["name"] for i in meta["inputs"]) == sorted(NUMERIC + CATEGORICAL)
    assert {o["name"] for o in meta["outputs"]} == {"score", "prediction"}
    server = client.get_server_metadata()
    assert server["name"] and isinstance(server["version"], str) and server["extensions"] == []


def test_infer_echoes_id_and_returns_only_requested_outputs(served):
    # upstream: kserve/kserve docs/predict-api/v2/required_api.md:223-224 "if specified this identifier must be
    # returned in the response"; :229-234 "outputs ... Optional, if not specified all outputs produced by the
    # model will be returned"; :377-378 "the inference server must return the output0 output tensor".
    cfg, _, _, client, http, _ = served
    only_score = [triton.InferRequestedOutput("score", binary_data=False)]
    result = client.infer(cfg.name, _inputs(3), outputs=only_score, request_id="case-42")
    body = result.get_response()
    assert body["id"] == "case-42" and body["model_name"] == cfg.name
    assert [o["name"] for o in body["outputs"]] == ["score"]
    scores = result.as_numpy("score")
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    assert result.as_numpy("prediction") is None
    # The body id is echoed even when the caller also sets the X-Request-ID header (a different id).
    result = client.infer(cfg.name, _inputs(1), request_id="body-id", headers={"X-Request-ID": "header-id"})
    assert result.get_response()["id"] == "body-id"
    # No outputs named: all of them, in the order of the model metadata.
    everything = client.infer(cfg.name, _inputs(3)).get_response()
    assert [o["name"] for o in everything["outputs"]] == ["score", "prediction"]
    order = [triton.InferRequestedOutput("prediction", binary_data=False), *only_score]
    assert [o["name"] for o in client.infer(cfg.name, _inputs(2), outputs=order).get_response()["outputs"]] == [
        "prediction",
        "score",
    ]
    err = _refused(lambda: client.infer(cfg.name, _inputs(2), outputs=[triton.InferRequestedOutput("proba")]))
    assert err.status() == "400" and "'proba' is not an output of this model" in err.message()


def test_versioned_urls(served):
    # upstream: kserve/kserve docs/predict-api/v2/required_api.md:46, :54, :58
    # "v2/models/${MODEL_NAME}[/versions/${MODEL_VERSION}]/ready | (metadata) | /infer"
    cfg, champion, challenger, client, http, _ = served
    for version in (champion, challenger):
        assert client.is_model_ready(cfg.name, model_version=version)
        meta = client.get_model_metadata(cfg.name, model_version=version)
        assert meta["name"] == cfg.name and meta["versions"] == [version]
        for _ in range(3):  # a version in the URL is that version, whatever the A/B split would pick
            body = client.infer(cfg.name, _inputs(2), model_version=version).get_response()
            assert body["model_version"] == version
    assert client.is_model_ready(cfg.name, model_version="v-not-served") is False
    err = _refused(lambda: client.infer(cfg.name, _inputs(2), model_version="v-not-served"))
    assert err.status() == "404" and "v-not-served" in err.message() and champion in err.message()
    r = http.get(f"/v2/models/{cfg.name}/versions/v-not-served")
    assert r.status_code == 404 and "v-not-served" in r.json()["error"]


def test_errors_are_an_error_string(served):
    # upstream: kserve/kserve docs/predict-api/v2/required_api.md:333-340 "A failed inference request must be
    # indicated by an HTTP error status (typically 400). The HTTP body must contain the $inference_error_response
    # object": {"error": <error message string>}; :118-125 and :185-192 the same for metadata.
    cfg, _, _, client, http, _ = served
    err = _refused(lambda: client.infer("no-such-model", _inputs(1)))
    assert err.status() == "404" and "no-such-model" in err.message()
    err = _refused(lambda: client.get_model_metadata("no-such-model"))
    assert err.status() == "404" and "no-such-model" in err.message()
    bad = _inputs(2)
    bad[0] = triton.InferInput(NUMERIC[0], [2], "BYTES")
    bad[0].set_data_from_numpy(np.array(["lots", "x"], dtype=object), binary_data=False)
    err = _refused(lambda: client.infer(cfg.name, bad))
    assert err.status().startswith("4") and NUMERIC[0] in err.message()
    for r in (
        http.post(f"/v2/models/{cfg.name}/infer", content=b"{", headers={"content-type": "application/json"}),
        http.post(f"/v2/models/{cfg.name}/infer", json=[1, 2]),
        http.post(f"/v2/models/{cfg.name}/infer", json={"inputs": []}),
        http.get("/v2/models/no-such-model"),
        http.get("/v2/models/no-such-model/versions/v1/ready"),
        # answered by the body-limits middleware before any route runs
        http.post(f"/v2/models/{cfg.name}/infer", json={}, headers={"X-Request-ID": "not a safe id"}),
    ):
        assert 400 <= r.status_code < 500 and isinstance(r.json()["error"], str) and r.json()["error"], r.text
        assert "x-request-id" in r.headers  # civicml's identity of the failed request is kept beside it


def test_parameters_may_be_string_number_or_bool(served):
    # upstream: kserve/kserve docs/predict-api/v2/required_api.md:396-407 "$parameter = $string : $string |
    # $number | $boolean"
    cfg, _, _, client, http, _ = served
    body = client.infer(cfg.name, _inputs(1), parameters={"key": "case-7", "explain": False, "n": 3.5}).get_response()
    assert body["outputs"] and all(isinstance(v, (str, int, float, bool)) for v in body["parameters"].values())
    meta = client.get_model_metadata(cfg.name)
    assert all(isinstance(v, (str, int, float, bool)) for v in meta.get("parameters", {}).values()), meta
    inputs = [t._get_tensor() for t in _inputs(1)]
    for where, bad in (
        ("parameters.key", {"inputs": inputs, "parameters": {"key": {"nested": 1}}}),
        ("parameters.tag", {"inputs": inputs, "parameters": {"tag": None}}),
        ("outputs[0].parameters.x", {"inputs": inputs, "outputs": [{"name": "score", "parameters": {"x": [1]}}]}),
    ):
        r = http.post(f"/v2/models/{cfg.name}/infer", json=bad)
        assert r.status_code == 400 and where in r.json()["error"], r.text


def test_binary_tensor_data_is_refused_with_a_clear_error(served):
    # tritonclient sends binary tensors by default (Triton's extension, not part of the required API; the server
    # metadata lists no extensions). upstream: triton-inference-server/server docs/protocol/extension_binary_data.md
    # ("binary_data_size", "Inference-Header-Content-Length").
    cfg, _, _, client, _, _ = served
    err = _refused(lambda: client.infer(cfg.name, _inputs(2, binary=True)))
    assert err.status() == "415" and "binary_data=False" in err.message(), err
    # Binary *outputs* asked for (tritonclient's default when no outputs are named) are answered as JSON tensors,
    # which the client reads the same way.
    asked = [triton.InferRequestedOutput("score", binary_data=True)]
    result = client.infer(cfg.name, _inputs(2), outputs=asked)
    assert result.as_numpy("score").shape == (2,)
