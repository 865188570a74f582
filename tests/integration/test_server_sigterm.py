"""`civicml serve` as a real process: SIGTERM during traffic loses no acknowledged prediction,
and a tampered model stops the server before it binds its port."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from serving_support import commit_served, demo_config, prepared_data, serving_env
from support import free_port

from civicml import steps
from civicml.config import RunConfig
from civicml.data.demo import CATEGORICAL, NUMERIC, generate_benefits
from civicml.serving.logread import read_records
from civicml.serving.predlog import PREDICTIONS
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "civicml.cli"]


def _build(root: Path) -> tuple[Path, Path, str]:
    """One champion trained on demo data; returns (config file, store dir, version)."""
    from civicml.modeling.estimators import build_params, fit_model
    from civicml.modeling.persistence import save_model

    store = root / "store"
    # A long linger makes requests pile up in an unwritten batch when SIGTERM arrives.
    raw = demo_config(store, 2000, deploy={"log_flush_seconds": 0.3, "log_batch_records": 10_000})
    cfg = RunConfig.model_validate(raw)
    data_dir = root / "data"
    train, spec = prepared_data(cfg, data_dir)
    model = fit_model("xgboost", spec, build_params("xgboost", {"n_estimators": 20}, {}), train, 42, 1)
    save_model(model, root / "model")
    version = commit_served(Registry(LocalStore(store)), cfg, root / "model", (data_dir / "contract.json").read_bytes())
    steps.deploy(cfg, version)
    config_file = root / "civicml.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    return config_file, store, version


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    with serving_env():
        yield _build(tmp_path_factory.mktemp("sigterm"))


def _env(store: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CIVICML_ROUTING_FILE",)}
    env["CIVICML_STORE_URI"] = str(store)
    return env


def _wait_ready(proc: subprocess.Popen, url: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become ready")


def test_sigterm_during_traffic_keeps_every_acknowledged_prediction(built, tmp_path):
    config_file, store, version = built
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--config", str(config_file)],
        cwd=tmp_path,
        env=_env(store),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(proc, url)
        recs = json.loads(generate_benefits(20, seed=5)[NUMERIC + CATEGORICAL].to_json(orient="records"))
        acked: list[str] = []
        clients: dict[str, str] = {}
        refused: list[int] = []
        lock = threading.Lock()
        stop = threading.Event()
        enough = threading.Event()

        def traffic(worker: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as c:
                i = 0
                while not stop.is_set():
                    rid = f"w{worker}-{i}"
                    i += 1
                    try:
                        r = c.post("/predict", json={"records": [recs[i % len(recs)]]}, headers={"X-Request-ID": rid})
                    except httpx.TransportError:
                        return  # the server has closed its listener: traffic stops
                    with lock:
                        if r.status_code == 200:
                            # The caller's id is echoed; the id the server issued is what the log (and feedback) use.
                            assert r.headers["x-request-id"] == rid
                            acked.append(r.json()["request_id"])
                            clients[r.json()["request_id"]] = rid
                            if len(acked) >= 60:
                                enough.set()
                        else:
                            refused.append(r.status_code)

        workers = [threading.Thread(target=traffic, args=(w,)) for w in range(6)]
        for w in workers:
            w.start()
        assert enough.wait(120), "traffic never reached 60 acknowledged predictions"
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        stop.set()
        for w in workers:
            w.join(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode()
    # uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is a clean exit too.
    assert rc in (0, -signal.SIGTERM), err[-2000:]
    assert "Application shutdown complete" in err
    # civicml's own lines reach the server log, in uvicorn's format (not only its warnings, bare).
    assert re.search(rf"INFO: +serving \S+: champion {version};", err), err[-2000:]
    assert "start-up objects frozen out of the cyclic collector" in err
    assert set(refused) <= {503}, refused
    logged = read_records(LocalStore(store), PREDICTIONS).records
    logged_ids = {r["request_id"] for r in logged}
    missing = [rid for rid in acked if rid not in logged_ids]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged predictions missing from the log"
    # Every record is complete, from this version, and nothing was logged twice.
    assert len(logged) == len(logged_ids)
    for r in logged:
        assert {"request_id", "key", "arm", "version", "ts", "features", "score", "prediction"} <= set(r)
        assert r["version"] == version and r["arm"] == "champion"
    assert all(r["client_request_id"] == clients[r["request_id"]] for r in logged if r["request_id"] in clients)


def test_tampered_model_exits_nonzero_with_clear_error(built, tmp_path):
    config_file, store, version = built
    bad_store = tmp_path / "store"
    shutil.copytree(store, bad_store, ignore=shutil.ignore_patterns("logs"))
    reg = Registry(LocalStore(bad_store))
    key = reg.manifest(version)["artifacts"]["model/model.json"]["key"]
    (bad_store / key).write_text((bad_store / key).read_text().replace('"xgboost"', '"xgboost" '))
    port = free_port()
    res = subprocess.run(
        [*CLI, "serve", "--port", str(port), "--config", str(config_file)],
        cwd=tmp_path,
        env=_env(bad_store),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 1
    assert "integrity check" in res.stderr and "model/model.json" in res.stderr
    assert "Traceback" not in res.stderr
