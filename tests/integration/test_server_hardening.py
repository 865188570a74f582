"""Hostile HTTP against the model server over real loopback HTTP: body limits while reading, trickled
bodies, row caps, client disconnects, deep JSON and huge integers, unsafe ids, readiness, feedback auth
and issued ids, docs/metrics switched off, and a bounded schemathesis run against /openapi.json."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from serving_support import ServerThread, build_registry, demo_records, serving_env

from civicml.config import ServingConfig
from civicml.data.demo import CATEGORICAL, NUMERIC
from civicml.monitoring.ab import ab_report
from civicml.serving.app import create_app, load_state
from civicml.serving.logread import read_records
from civicml.serving.predlog import FEEDBACK, PREDICTIONS
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

pytestmark = pytest.mark.slow

TOKEN = "hardening-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMITS = {"max_body_bytes": 64 * 1024, "body_timeout_seconds": 1.0, "max_rows": 50, "max_explain_rows": 5}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    with serving_env(TOKEN):
        yield build_registry(tmp_path_factory.mktemp("hardening"))


def _serve(built, tmp_path, **serving):
    """A server on a private copy of the registry (its own logs), with `serving` overrides."""
    cfg, reg = built[0], built[1]
    shutil.copytree(reg.store.root, tmp_path / "store", ignore=shutil.ignore_patterns("logs"))
    fresh = Registry(LocalStore(tmp_path / "store"))
    cfg = cfg.model_copy(update={"serving": ServingConfig.model_validate({**LIMITS, **serving})})
    return ServerThread(create_app(load_state(cfg, fresh, tmp_path / "work"))), fresh


def _clean(n=1, seed=11):
    recs, labels = demo_records(n, seed)
    return [{k: r[k] for k in NUMERIC + CATEGORICAL} for r in recs], labels


def _raw(port: int, head: bytes, body_chunks=(), pause=0.0, timeout=10.0) -> tuple[int, float]:
    """Send a raw HTTP request; return (status, seconds until the status line arrived)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        import select

        try:
            for chunk in body_chunks:
                s.sendall(chunk)
                if select.select([s], [], [], pause)[0]:
                    break  # the server answered while we were still sending
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = s.recv(4096)
    return int(data.split(b" ")[1]), time.monotonic() - t0


# -- item 6: limits ------------------------------------------------------------------------------


def test_declared_oversized_body_is_refused_before_reading(built, tmp_path):
    server, _ = _serve(built, tmp_path)
    with server:
        head = (
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 314572800\r\n\r\n"
        )
        status, _ = _raw(server.port, head)
        assert status == 413


def test_streamed_oversized_body_is_cut_off_while_reading(built, tmp_path):
    """A chunked body (no Content-Length) gets its 413 while the client is still sending, not after."""
    import select

    server, _ = _serve(built, tmp_path)
    chunk = b" " * 65536
    with server, socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        s.sendall(b"Transfer-Encoding: chunked\r\n\r\n")
        answer = b""
        sent = 0
        while sent < 2000:
            sent += 1  # 2000 x 64 KiB = 125 MiB if the server read it all
            try:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([s], [], [], 0)[0]:
                answer = s.recv(4096)
                break
        if not answer:
            answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Socket buffers on both sides hold a few MiB before the server reads at all; 125 MiB is what it would take.
    assert sent < 200, f"the client sent {sent} x 64 KiB before the server refused a 64 KiB limit"


def test_trickling_body_times_out(built, tmp_path):
    server, _ = _serve(built, tmp_path)
    with server:
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
        status, took = _raw(server.port, head, [b"[" for _ in range(40)], pause=0.2, timeout=15)
        assert status == 408 and took < 5  # 40 x 0.2 s = 8 s if the server waited for the whole body


def test_rows_and_explain_rows_are_capped(built, tmp_path):
    server, _ = _serve(built, tmp_path)
    with server as c:
        recs, _ = _clean(51)
        r = c.post("/predict", json={"records": recs})
        assert r.status_code == 422 and "serving.max_rows" in r.text
        r = c.post("/predict?explain=true", json={"records": recs[:6]})
        assert r.status_code == 422 and "serving.max_explain_rows" in r.text
        assert c.post("/predict?explain=true", json={"records": recs[:5]}).status_code == 200


def test_work_stops_when_the_client_leaves(built, tmp_path, monkeypatch):
    import civicml.evaluation.explain as explain

    slow = explain.top_contributions

    def crawl(*a, **k):
        time.sleep(0.5)
        return slow(*a, **k)

    monkeypatch.setattr(explain, "top_contributions", crawl)
    server, reg = _serve(built, tmp_path, max_explain_rows=20)
    with server as c:
        recs, _ = _clean(20)
        with pytest.raises(httpx.ReadTimeout):
            c.post("/predict?explain=true", json={"records": recs}, timeout=1.0)
        deadline = time.monotonic() + 10
        while "civicml_cancelled_total 1.0" not in c.get("/metrics").text:
            assert time.monotonic() < deadline, "the server went on explaining for a client that left"
            time.sleep(0.2)
        # The abandoned request was never acknowledged, so it was not logged either.
        assert not [r for r in read_records(reg.store, PREDICTIONS).records if r["row"] == 19]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"records": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"records": [{"monthly_income": ' + b"9" * 5000 + b"}]}",
        b'{"inputs": [{"name": "monthly_income", "shape": [1], "datatype": "INT64", "data": [' + b"7" * 5000 + b"]}]}",
    ],
)
def test_deep_json_and_huge_integers_are_4xx(built, tmp_path, body):
    server, _ = _serve(built, tmp_path)
    with server as c:
        for route in ("/predict", f"/v2/models/{built[0].name}/infer", "/feedback"):
            r = c.post(route, content=body, headers={"content-type": "application/json", **AUTH})
            assert 400 <= r.status_code < 500, (route, r.status_code, r.text[:300])


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\x00b", "a\u2028b", "has space"])
def test_unsafe_ids_are_refused_before_anything_is_logged(built, tmp_path, bad):
    server, reg = _serve(built, tmp_path)
    recs, _ = _clean(1)
    inputs = [
        {"name": k, "shape": [1], "datatype": "FP64" if k in NUMERIC else "BYTES", "data": [recs[0][k]]}
        for k in recs[0]
    ]
    with server as c:
        r = c.post(f"/v2/models/{built[0].name}/infer", json={"id": bad, "inputs": inputs})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "id"], r.text
        assert bad not in r.headers.get("x-request-id", "")
        if "\r" not in bad and "\n" not in bad and "\x00" not in bad:  # h11 refuses these in headers itself
            r = c.post("/predict", json={"records": recs}, headers={"X-Request-ID": bad.encode()})
            assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["header", "X-Request-ID"]
    assert read_records(reg.store, PREDICTIONS).records == []


def test_readiness_follows_the_store(built, tmp_path):
    server, reg = _serve(built, tmp_path, readiness_probe_seconds=0)
    with server as c:
        assert c.get("/v2/health/ready").status_code == 200
        # The store stops taking writes under logs/ (the only place the server writes: predictions, feedback and
        # its health probe): a file where that directory must be, since root ignores permission bits.
        root = reg.store.root
        shutil.rmtree(root / "logs", ignore_errors=True)
        (root / "logs").write_text("blocked")
        recs, _ = _clean(1)
        assert c.post("/predict", json={"records": recs}).status_code == 503
        r = c.get("/v2/health/ready")
        # upstream: kserve/kserve docs/predict-api/v2/required_api.md:62-65 (4xx is false; the reason is the error)
        assert r.status_code == 400 and "does not take writes" in r.json()["error"]
        (root / "logs").unlink()
        assert c.get("/v2/health/ready").status_code == 200
        assert c.post("/predict", json={"records": recs}).status_code == 200


# -- item 3: who may label ---------------------------------------------------------------------------


def _predict(c, n=1, key=None):
    recs, labels = _clean(n)
    body = c.post("/predict", json={"records": recs, **({"key": key} if key else {})}).json()
    return body, labels


def test_feedback_needs_the_token(built, tmp_path, monkeypatch):
    server, _ = _serve(built, tmp_path)
    with server as c:
        body, labels = _predict(c)
        fb = {"request_id": body["request_id"], "outcome": labels[0]}
        assert c.post("/feedback", json=fb).status_code == 401
        assert c.post("/feedback", json=fb, headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert c.post("/feedback", json=fb, headers=AUTH).status_code == 200
    monkeypatch.delenv("CIVICML_FEEDBACK_TOKEN")
    server, _ = _serve(built, tmp_path / "b")
    with server as c:
        r = c.post("/feedback", json=fb, headers=AUTH)
        assert r.status_code == 503 and "CIVICML_FEEDBACK_TOKEN is not set" in r.text


def test_forged_feedback_cannot_turn_the_report(built, tmp_path):
    server, reg = _serve(built, tmp_path)
    with server as c:
        issued = [_predict(c, key=f"case-{i}")[0] for i in range(20)]
        ids = {b["request_id"] for b in issued}
        assert len(ids) == 20
        # Ids the server never issued are refused, even with the token.
        forged = [f"{i:032x}.{i:016x}" for i in range(600)]
        codes = {c.post("/feedback", json={"request_id": f, "outcome": 1}, headers=AUTH).status_code for f in forged}
        assert codes == {404}
        # A client-chosen X-Request-ID is echoed, but the id that feedback needs is issued by the server.
        a = c.post("/predict", json={"records": _clean(1)[0]}, headers={"X-Request-ID": "same"}).json()
        b = c.post("/predict", json={"records": _clean(1)[0]}, headers={"X-Request-ID": "same"}).json()
        assert a["request_id"] != b["request_id"]
        # A second label is recorded as a conflict and refused; the first one counts.
        first = {"request_id": a["request_id"], "outcome": 1}
        assert c.post("/feedback", json=first, headers=AUTH).status_code == 200
        again = c.post("/feedback", json={**first, "outcome": 0}, headers=AUTH)
        assert again.status_code == 409 and "recorded as a conflict" in again.text
    logged = [r for r in read_records(reg.store, FEEDBACK).records if r["request_id"] == a["request_id"]]
    assert [(r["outcome"], r["relabel"]) for r in logged] == [(1, False), (0, True)]
    rep = ab_report(reg, min_samples=1)
    assert rep["labels"]["received_by_source"] == {"token:CIVICML_FEEDBACK_TOKEN": 2}
    assert rep["labels"]["conflicting"] == 1 and sum(m["labelled"] for m in rep["arms"].values()) == 1


def test_mesh_identity_labels_and_is_reported_by_source(built, tmp_path):
    caller = "spiffe://cluster.local/ns/cases/sa/case-worker"
    auth = {"mode": "mesh", "mesh_identities": [caller]}
    server, reg = _serve(built, tmp_path, feedback_auth=auth)
    with server as c:
        body, labels = _predict(c)
        fb = {"request_id": body["request_id"], "outcome": labels[0]}
        assert c.post("/feedback", json=fb).status_code == 401
        other = {"x-forwarded-client-cert": "By=spiffe://x;Hash=ab;URI=spiffe://cluster.local/ns/x/sa/intruder"}
        assert c.post("/feedback", json=fb, headers=other).status_code == 403
        xfcc = {"x-forwarded-client-cert": f"By=spiffe://cluster.local/ns/civicml/sa/server;Hash=ab;URI={caller}"}
        assert c.post("/feedback", json=fb, headers=xfcc).status_code == 200
    assert ab_report(reg, min_samples=1)["labels"]["counted_by_source"] == {f"mesh:{caller}": 1}


def test_metrics_and_docs_can_be_switched_off(built, tmp_path):
    server, _ = _serve(built, tmp_path, metrics=False, docs=False)
    with server as c:
        for path in ("/metrics", "/docs", "/redoc", "/openapi.json"):
            assert c.get(path).status_code == 404, path
        assert c.post("/predict", json={"records": _clean(1)[0]}).status_code == 200


def test_prediction_can_require_a_token(built, tmp_path, monkeypatch):
    monkeypatch.setenv("CIVICML_PREDICT_TOKEN", "predict-token-xyz")
    server, _ = _serve(built, tmp_path, predict_auth={"mode": "token", "token_env": "CIVICML_PREDICT_TOKEN"})
    with server as c:
        recs, _ = _clean(1)
        assert c.post("/predict", json={"records": recs}).status_code == 401
        ok = c.post("/predict", json={"records": recs}, headers={"Authorization": "Bearer predict-token-xyz"})
        assert ok.status_code == 200


# -- must show: schemathesis ---------------------------------------------------------------------------


def test_openapi_describes_bodies_and_4xx(built, tmp_path):
    server, _ = _serve(built, tmp_path)
    with server as c:
        doc = c.get("/openapi.json").json()
    for path in ("/predict", "/feedback", "/v2/models/{name}/infer"):
        op = doc["paths"][path]["post"]
        assert "application/json" in op["requestBody"]["content"], path
        assert {"413", "422"} <= set(op["responses"]), path
    record = doc["components"]["schemas"]["Record"]
    assert set(NUMERIC + CATEGORICAL) <= set(record["required"]) and record["additionalProperties"] is False


def test_schemathesis_finds_no_server_error(built, tmp_path):
    """`st run --checks all` against the live /openapi.json: no 5xx and every answer as documented.

    max_explain_rows = max_rows here, so the body schema's maxItems is the whole row rule (the explain
    cap below it is tested in test_rows_and_explain_rows_are_capped).
    """
    server, _ = _serve(built, tmp_path, max_explain_rows=LIMITS["max_rows"])
    config = Path(__file__).with_name("schemathesis.toml")
    with server:
        cmd = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"http://127.0.0.1:{server.port}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            os.environ.get("CIVICML_FUZZ_EXAMPLES", "25"),
            "--seed",
            "12",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            "--request-timeout",
            "20",
        ]
        # cwd: schemathesis keeps a cache folder (.schemathesis) in its working directory.
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=540, cwd=tmp_path)
    report = out.stdout[-6000:] + out.stderr[-2000:]
    assert out.returncode == 0, report
    assert "Server error" not in out.stdout, report
    print(json.dumps({"schemathesis": out.stdout.splitlines()[-5:]}))
