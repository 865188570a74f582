"""`POST /predict` answered by `serving.direct.DirectRoutes` equals FastAPI's own answer, byte for byte.

Two apps over the same registry: one as built (the direct route answers), one with `DirectRoutes`
taken out of its middleware (every request through FastAPI's router). Each request goes to both,
with the same issued request id, and status, headers and body must be identical: good bodies, bad
ones (JSON, schema, top-level fields, row caps, oversized), auth failures, a log that cannot be
written, an unexpected error, and the requests the direct route leaves to FastAPI (a query string,
another method). The metrics' request counts and the OpenAPI document must match as well.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator

import pytest
from fastapi.routing import APIRouter
from fastapi.testclient import TestClient
from serving_support import build_registry, demo_records, serving_env

from civicml.config import ServingConfig
from civicml.data.demo import CATEGORICAL, NUMERIC
from civicml.serving.app import create_app, load_state
from civicml.serving.direct import DirectRoutes
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

pytestmark = pytest.mark.slow

TOKEN = "direct-route-token-0123456789abcdef"
LIMITS = {"max_body_bytes": 16 * 1024, "max_rows": 5, "max_explain_rows": 2}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    with serving_env():
        yield build_registry(tmp_path_factory.mktemp("direct"))


@pytest.fixture
def router_calls(monkeypatch) -> dict[int, int]:
    """Requests that reached FastAPI's router, by app (id of its router)."""
    calls: dict[int, int] = {}
    original = APIRouter.__call__

    async def counted(self, scope, receive, send):
        if scope["type"] == "http":
            calls[id(self)] = calls.get(id(self), 0) + 1
        await original(self, scope, receive, send)

    monkeypatch.setattr(APIRouter, "__call__", counted)
    return calls


def _apps(built, tmp_path, **serving):
    """(direct app, FastAPI-only app) over one private copy of the registry."""
    cfg, reg = built[0], built[1]
    shutil.copytree(reg.store.root, tmp_path / "store", ignore=shutil.ignore_patterns("logs"))
    fresh = Registry(LocalStore(tmp_path / "store"))
    cfg = cfg.model_copy(update={"serving": ServingConfig.model_validate({**LIMITS, **serving})})
    state = load_state(cfg, fresh, tmp_path / "work")
    direct, routed = create_app(state), create_app(state)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not DirectRoutes]
    assert len(routed.user_middleware) == len(direct.user_middleware) - 1
    return direct, routed


class Pair:
    """Both apps' clients; `send` gives a request to each with the same issued id and returns both answers."""

    def __init__(self, direct, routed):
        self.apps = (direct, routed)
        self.clients = [TestClient(app, raise_server_exceptions=False) for app in self.apps]
        self.n = itertools.count()

    def __enter__(self) -> Pair:
        for c in self.clients:
            c.__enter__()
        return self

    def __exit__(self, *exc):
        for c in self.clients:
            c.__exit__(*exc)

    def send(self, method: str, url: str, **kw):
        nonce = f"{next(self.n):032x}"
        out = []
        for app, client in zip(self.apps, self.clients):
            # Each app signs with a key of its own: the same id for both, whatever its signature.
            app.state.plane.issuer.issue = lambda: f"{nonce}.{'0' * 16}"
            out.append(client.request(method, url, **kw))
        return out

    def same(self, method: str, url: str, **kw):
        """Both answers, asserted identical in status, headers (names, values, order) and body bytes."""
        a, b = self.send(method, url, **kw)
        assert (a.status_code, a.headers.raw, a.content) == (b.status_code, b.headers.raw, b.content)
        return a


def _records(n: int = 1) -> list[dict]:
    recs, _ = demo_records(n, seed=5)
    return [{k: r[k] for k in NUMERIC + CATEGORICAL} for r in recs]


def _bad_bodies() -> Iterator[tuple[str, bytes | str]]:
    rec = _records()[0]
    yield "not json", b'{"records": [}'
    yield "not utf-8", b'{"records": "\xff"}'
    yield "empty", b""
    yield "deep", "[" * 5000 + "]" * 5000
    yield "no records", json.dumps({"rows": [rec]})
    yield "extra field", json.dumps({"records": [rec], "explain": True})
    yield "key not text", json.dumps({"records": [rec], "key": 3})
    yield "records not a list", json.dumps({"records": rec})
    yield "empty list", json.dumps({"records": []})
    yield "string for a number", json.dumps({"records": [{**rec, NUMERIC[0]: "12"}]})
    yield "unknown feature", json.dumps({"records": [{**rec, "shoe_size": 9}]})
    yield "missing feature", json.dumps({"records": [{k: v for k, v in rec.items() if k != NUMERIC[0]}]})
    yield "unseen category", json.dumps({"records": [{**rec, CATEGORICAL[0]: "nowhere"}]})
    yield "too many rows", json.dumps({"records": [rec] * (LIMITS["max_rows"] + 1)})
    yield "too large", json.dumps({"records": [{**rec, "pad": "x" * LIMITS["max_body_bytes"]}]})


def test_answers_are_identical_and_direct(built, tmp_path, router_calls):
    direct, routed = _apps(built, tmp_path)
    recs = _records(3)
    with Pair(direct, routed) as pair:
        for body in ({"records": recs[:1]}, {"records": recs}, recs[:2], {"records": recs[:1], "key": "case-1"}):
            answer = pair.same("POST", "/predict", json=body)
            assert answer.status_code == 200 and answer.json()["predictions"]
        pair.same("POST", "/predict", json={"records": recs[:1]}, headers={"X-Request-ID": "client-7"})
        pair.same("POST", "/predict", json={"records": recs[:1]}, headers={"X-Civicml-Key": "case-2"})
        for name, body in _bad_bodies():
            answer = pair.same("POST", "/predict", content=body, headers={"content-type": "application/json"})
            assert 400 <= answer.status_code < 500, name
        assert router_calls.get(id(direct.router), 0) == 0  # every one of those was answered directly
        # Left to FastAPI by both: a query string (parsed by FastAPI), another method, another path.
        assert pair.same("POST", "/predict?explain=true", json={"records": recs[:1]}).json()["predictions"][0][
            "explanation"
        ]
        assert pair.same("POST", "/predict?explain=maybe", json={"records": recs[:1]}).status_code == 422
        assert pair.same("GET", "/predict").status_code == 405
        pair.same("POST", "/predict/", json={"records": recs[:1]}, follow_redirects=False)
        assert router_calls[id(direct.router)] == 4
        # Same requests counted under the same route and status (latencies and creation times differ).
        counts = [
            sorted(
                line
                for line in c.get("/metrics").text.splitlines()
                if line.startswith("civicml_request") and ("_total{" in line or "_count{" in line)
            )
            for c in pair.clients
        ]
        assert counts[0] == counts[1]
        assert any('route="/predict"' in ln and 'status="200"' in ln for ln in counts[0])
        assert pair.same("GET", "/openapi.json").json()["paths"]["/predict"]["post"]["requestBody"]


def test_auth_refusals_are_identical(built, tmp_path, monkeypatch, router_calls):
    monkeypatch.setenv("CIVICML_PREDICT_TOKEN", TOKEN)
    direct, routed = _apps(built, tmp_path, predict_auth={"mode": "token", "token_env": "CIVICML_PREDICT_TOKEN"})
    body = {"records": _records(1)}
    with Pair(direct, routed) as pair:
        assert pair.same("POST", "/predict", json=body).status_code == 401
        assert pair.same("POST", "/predict", json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert pair.same("POST", "/predict", json=body, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert router_calls.get(id(direct.router), 0) == 0


def test_log_failure_and_unexpected_errors_are_identical(built, tmp_path, monkeypatch):
    direct, routed = _apps(built, tmp_path)
    body = {"records": _records(1)}
    state = direct.state.serving
    with Pair(direct, routed) as pair:

        def down(key, data):
            raise OSError("disk gone")

        with monkeypatch.context() as m:
            m.setattr(state.registry.store, "put_bytes", down)
            assert pair.same("POST", "/predict", json=body).status_code == 503
        with monkeypatch.context() as m:
            for served in state.models.values():
                m.setattr(served.scorer, "score", lambda records: 1 / 0)
            assert pair.same("POST", "/predict", json=body).status_code == 500


def _infer_body(recs: list[dict], **extra) -> dict:
    """A v2 inference request with one tensor per feature column."""
    inputs = [
        {"name": c, "shape": [len(recs)], "datatype": "FP64" if c in NUMERIC else "BYTES", "data": [r[c] for r in recs]}
        for c in NUMERIC + CATEGORICAL
    ]
    return {"inputs": inputs, **extra}


def test_v2_infer_answers_are_identical_and_direct(built, tmp_path, router_calls):
    direct, routed = _apps(built, tmp_path)
    recs = _records(3)
    name, champion, challenger = built[0].name, built[2], built[3]
    good = _infer_body(recs)
    with Pair(direct, routed) as pair:
        for url in (
            f"/v2/models/{name}/infer",
            f"/v2/models/{name}/versions/{champion}/infer",
            f"/v2/models/{name}/versions/{challenger}/infer",
        ):
            assert pair.same("POST", url, json=good).json()["outputs"]
        url = f"/v2/models/{name}/infer"
        assert pair.same("POST", url, json=_infer_body(recs[:1], id="case-9", outputs=[{"name": "score"}])).json()
        pair.same("POST", url, json=_infer_body(recs[:1], parameters={"key": "case-3"}))
        bad = [
            ("POST", "/v2/models/nosuch/infer", {"json": good}),
            ("POST", f"/v2/models/{name}/versions/v0/infer", {"json": good}),
            ("POST", url, {"json": [good]}),
            ("POST", url, {"json": {"inputs": []}}),
            ("POST", url, {"json": _infer_body(recs, id="has space")}),
            ("POST", url, {"json": _infer_body(recs, outputs=[{"name": "nope"}])}),
            ("POST", url, {"json": _infer_body(recs * 2)}),  # more rows than max_rows
            ("POST", url, {"json": {"inputs": [{**good["inputs"][0], "datatype": "BYTES"}]}}),
            ("POST", url, {"json": good, "headers": {"Inference-Header-Content-Length": "10"}}),
            ("POST", url, {"content": b"{", "headers": {"content-type": "application/json"}}),
        ]
        for method, where, kw in bad:
            assert 400 <= pair.same(method, where, **kw).status_code < 500, (where, kw)
        assert router_calls.get(id(direct.router), 0) == 0
        assert pair.same("POST", f"{url}?x=1", json=good).status_code == 200  # left to FastAPI
        assert pair.same("GET", url).status_code == 405
        assert router_calls[id(direct.router)] == 2
        counts = [
            sorted(
                ln for ln in c.get("/metrics").text.splitlines() if ln.startswith("civicml_request") and "_total{" in ln
            )
            for c in pair.clients
        ]
        assert counts[0] == counts[1] and any('route="/v2/models/{name}/infer"' in ln for ln in counts[0])
