"""The model server over real HTTP on loopback: routing, stickiness, v2 shape, validation, fuzz,
feedback joined into the A/B report, and refusal to start on a tampered model."""

from __future__ import annotations

import json
import math
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_support import SHARE, ServerThread, build_registry, demo_records, serving_env

from civicml.data.demo import CATEGORICAL, NUMERIC
from civicml.monitoring.ab import ab_report
from civicml.serving.app import ServingError, create_app, load_state
from civicml.serving.routing import CHALLENGER, CHAMPION, choose_arm
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

pytestmark = pytest.mark.slow

FEEDBACK_TOKEN = "test-feedback-token-0123456789"
AUTH = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    with serving_env(FEEDBACK_TOKEN):
        yield build_registry(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def client(built):
    cfg, reg, _, _ = built
    state = load_state(cfg, reg)
    with ServerThread(create_app(state)) as c:
        yield c


def test_routing_over_http_follows_the_weights(built, client):
    _, _, champion, challenger = built
    recs, _ = demo_records(1)
    keys = [f"citizen-{i}" for i in range(10_000)]

    def one(k):
        r = client.post("/predict", json={"records": recs, "key": k})
        assert r.status_code == 200
        body = r.json()
        assert r.headers["x-model-arm"] == body["arm"] and r.headers["x-request-id"] == body["request_id"]
        assert r.headers["x-model-version"] == body["model_version"]
        assert body["model_version"] == (challenger if body["arm"] == CHALLENGER else champion)
        return body["arm"]

    # Concurrent requests: also exercises batching several requests into one log object.
    with ThreadPoolExecutor(8) as pool:
        arms = list(pool.map(one, keys))
    # Over 10,000 real HTTP requests the challenger gets the configured share within 3 points...
    share = arms.count(CHALLENGER) / len(arms)
    assert abs(share - SHARE) <= 0.03, share
    # ...and each request got exactly the arm the routing function picks for its key.
    assert arms == [choose_arm(k, SHARE, salt=challenger) for k in keys]


def test_same_key_same_arm(client):
    recs, _ = demo_records(1)
    for k in ("alice", "bob", "case-77", "x"):
        seen = {
            client.post("/predict", json={"records": recs}, headers={"X-Civicml-Key": k}).json()["arm"]
            for _ in range(5)
        }
        assert len(seen) == 1
    # No key: the request id decides, so a caller-given id is sticky too.
    seen = {
        client.post("/predict", json={"records": recs}, headers={"X-Request-ID": "req-fixed"}).json()["arm"]
        for _ in range(3)
    }
    assert len(seen) == 1


def test_v2_metadata_and_infer_shape(built, client):
    cfg = built[0]
    meta = client.get(f"/v2/models/{cfg.name}").json()
    assert sorted(i["name"] for i in meta["inputs"]) == sorted(NUMERIC + CATEGORICAL)
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64", "BYTES"}
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    recs, _ = demo_records(3)
    inputs = [
        {"name": c, "shape": [3], "datatype": "FP64" if c in NUMERIC else "BYTES", "data": [r[c] for r in recs]}
        for c in NUMERIC + CATEGORICAL
    ]
    r = client.post(f"/v2/models/{cfg.name}/infer", json={"id": "my-req-1", "inputs": inputs})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "my-req-1" == r.headers["x-request-id"]
    assert body["model_name"] == cfg.name and body["model_version"] == r.headers["x-model-version"]
    out = {o["name"]: o for o in body["outputs"]}
    assert out["score"]["shape"] == [3] and out["score"]["datatype"] == "FP64" and len(out["score"]["data"]) == 3
    assert all(0.0 <= s <= 1.0 for s in out["score"]["data"])
    assert set(out["prediction"]["data"]) <= {0, 1}
    # The same rows through /predict give the same scores from the same arm.
    p = client.post(
        "/predict",
        json={"records": [{k: r[k] for k in NUMERIC + CATEGORICAL} for r in recs]},
        headers={"X-Request-ID": "my-req-1"},
    ).json()
    assert [x["score"] for x in p["predictions"]] == pytest.approx(out["score"]["data"])
    assert client.post("/v2/models/nope/infer", json={"inputs": inputs}).status_code == 404
    # Optional contract columns (sensitive attributes, logged for fairness monitoring) go in as BYTES too.
    with_region = [*inputs, {"name": "region", "shape": [3], "datatype": "BYTES", "data": [r["region"] for r in recs]}]
    r = client.post(f"/v2/models/{cfg.name}/infer", json={"inputs": with_region})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "change,field",
    [
        (lambda r: r.pop("claim_amount"), "claim_amount"),
        (lambda r: r.__setitem__("monthly_income", "lots"), "monthly_income"),
        (lambda r: r.__setitem__("benefit_type", "spaceship"), "benefit_type"),
        (lambda r: r.__setitem__("household_size", None), "household_size"),
        (lambda r: r.__setitem__("surname", "Smith"), "surname"),
    ],
)
def test_bad_record_gets_422_naming_the_field(client, change, field):
    recs, _ = demo_records(2)
    change(recs[1])
    r = client.post("/predict", json={"records": recs})
    assert r.status_code == 422
    body = r.json()
    assert any(e["loc"][-1] == field and e["loc"][:3] == ["body", "records", 1] for e in body["detail"]), body
    assert body["request_id"] == r.headers["x-request-id"] and body["arm"] in (CHAMPION, CHALLENGER)


def test_bad_v2_inputs_get_422_naming_the_field(built, client):
    cfg = built[0]
    recs, _ = demo_records(2)
    inputs = [
        {"name": c, "shape": [2], "datatype": "FP64" if c in NUMERIC else "BYTES", "data": [r[c] for r in recs]}
        for c in NUMERIC + CATEGORICAL
    ]
    bad_type = json.loads(json.dumps(inputs))
    bad_type[0]["data"][1] = "x"
    wrong_dtype = json.loads(json.dumps(inputs))
    wrong_dtype[-1]["datatype"] = "FP32"
    missing = inputs[1:]
    for payload, field in ((bad_type, NUMERIC[0]), (wrong_dtype, CATEGORICAL[-1]), (missing, NUMERIC[0])):
        r = client.post(f"/v2/models/{cfg.name}/infer", json={"inputs": payload})
        assert r.status_code == 422
        assert any(field in e["loc"] for e in r.json()["detail"]), r.json()


def test_malformed_json_is_4xx(client):
    r = client.post("/predict", content=b'{"records": [', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    assert r.headers["x-request-id"] and r.headers["x-model-arm"]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _mutated_record(draw):
    recs, _ = demo_records(1)
    rec = dict(recs[0])
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(rec) + ["extra"]))
        if draw(st.booleans()):
            rec.pop(key, None)
        else:
            rec[key] = draw(_json)
    return {"records": [rec]}


_bodies = st.one_of(
    st.binary(max_size=64),
    _json.map(lambda v: json.dumps(v).encode()),
    _mutated_record().map(lambda v: json.dumps(v).encode()),
    _json.map(lambda v: json.dumps({"inputs": v}).encode()),
    _json.map(lambda v: json.dumps({"request_id": v, "outcome": v}).encode()),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(body=_bodies, route=st.sampled_from(["/predict", "/v2/models/benefits-review/infer", "/feedback"]))
def test_fuzz_never_5xx(client, body, route):
    r = client.post(route, content=body, headers={"content-type": "application/json", **AUTH})
    assert r.status_code < 500, (route, body, r.text)
    if r.status_code >= 400:
        assert "x-request-id" in r.headers


def test_metrics_count_predictions_per_arm(client):
    text = client.get("/metrics").text
    assert 'civicml_predictions_total{arm="champion"' in text
    assert 'civicml_predictions_total{arm="challenger"' in text
    assert "civicml_request_latency_seconds_bucket" in text
    assert 'civicml_request_errors_total{route="/predict",status="422"}' in text


def test_feedback_joined_gives_hand_computed_report(built, tmp_path):
    cfg, reg = built[0], built[1]
    # A copy of the registry without the other tests' logs: only this test's traffic is analysed.
    shutil.copytree(reg.store.root, tmp_path / "store", ignore=shutil.ignore_patterns("logs"))
    fresh = Registry(LocalStore(tmp_path / "store"))
    recs, labels = demo_records(120, seed=23)
    hand = {CHAMPION: [], CHALLENGER: []}
    with ServerThread(create_app(load_state(cfg, fresh, tmp_path / "work"))) as c:

        def one(i):
            rec, y = recs[i], labels[i]
            body = c.post("/predict", json={"records": [rec], "key": f"case-{i}"}).json()
            pred = body["predictions"][0]["prediction"]
            if i % 5 == 0:  # a fifth never gets feedback
                return body["arm"], (pred, None)
            fb = c.post("/feedback", json={"request_id": body["request_id"], "outcome": y}, headers=AUTH)
            assert fb.status_code == 200 and fb.json()["arm"] == body["arm"], fb.text
            return body["arm"], (pred, y)

        with ThreadPoolExecutor(8) as pool:
            for arm, row in pool.map(one, range(len(recs))):
                hand[arm].append(row)
        bad = c.post("/feedback", json={"request_id": "x", "outcome": 7}, headers=AUTH)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "outcome"]
    rep = ab_report(fresh, min_samples=10)
    for arm in (CHAMPION, CHALLENGER):
        rows = hand[arm]
        lab = [(p, y) for p, y in rows if y is not None]
        m = rep["arms"][arm]
        assert m["count"] == len(rows) and m["labelled"] == len(lab)
        assert m["positive_rate"] == pytest.approx(np.mean([p for p, _ in rows]))
        assert m["accuracy"] == pytest.approx(np.mean([p == y for p, y in lab]))
    a, b = rep["arms"][CHAMPION], rep["arms"][CHALLENGER]
    pooled = (a["correct"] + b["correct"]) / (a["labelled"] + b["labelled"])
    z = (b["accuracy"] - a["accuracy"]) / math.sqrt(pooled * (1 - pooled) * (1 / a["labelled"] + 1 / b["labelled"]))
    assert rep["z_test"]["z"] == pytest.approx(z)
    significant = rep["msprt"]["p_value"] < 0.05
    expected = ("promote" if b["accuracy"] > a["accuracy"] else "roll back") if significant else "keep"
    assert rep["recommendation"] == expected


def test_tampered_model_refuses_to_start(built, tmp_path):
    cfg, reg, champion, _ = built
    shutil.copytree(reg.store.root, tmp_path / "store")
    bad = Registry(LocalStore(tmp_path / "store"))
    key = bad.manifest(champion)["artifacts"]["model/model.ubj"]["key"]
    path = tmp_path / "store" / key
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ServingError, match="integrity check"):
        load_state(cfg, bad, tmp_path / "work")
    empty = Registry(LocalStore(tmp_path / "empty"))
    with pytest.raises(ServingError, match="no champion"):
        load_state(cfg, empty, tmp_path / "work2")


def test_predict_with_explanations(client):
    recs, _ = demo_records(2)
    r = client.post("/predict?explain=true", json={"records": [{k: x[k] for k in NUMERIC + CATEGORICAL} for x in recs]})
    assert r.status_code == 200, r.text
    for item in r.json()["predictions"]:
        feats = [e["feature"] for e in item["explanation"]]
        assert feats and set(feats) <= set(NUMERIC + CATEGORICAL)
        contribs = [abs(e["contribution"]) for e in item["explanation"]]
        assert contribs == sorted(contribs, reverse=True)
