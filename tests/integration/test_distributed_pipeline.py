"""Must show (issue 20): `civicml run --set training.workers=2` passes the whole pipeline through kfp.local
on the demo data, the gate decides, the model serves over real HTTP, and `civicml reproduce` reports
identical bytes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn
import yaml
from support import demo_config

from civicml.config import load_config
from civicml.data.demo import CATEGORICAL, NUMERIC, generate_benefits
from civicml.modeling.persistence import load_model
from civicml.serving.app import create_app, load_state
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("kfp_local_isolated")]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "civicml.cli.__main__", *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_and_infer(cfg, registry: Registry, rows: pd.DataFrame) -> list[float]:
    state = load_state(cfg, registry)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the model server died during start-up")
            thread.join(0.05)
        inputs = [
            {
                "name": c,
                "shape": [len(rows)],
                "datatype": "FP64" if c in NUMERIC else "BYTES",
                "data": rows[c].tolist() if c in NUMERIC else rows[c].astype(str).tolist(),
            }
            for c in NUMERIC + CATEGORICAL
        ]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.get("/v2/health/ready").json() == {"ready": True}
            r = client.post(f"/v2/models/{cfg.name}/infer", json={"inputs": inputs})
            assert r.status_code == 200, r.text
            out = {o["name"]: o for o in r.json()["outputs"]}
            return out["score"]["data"]
    finally:
        server.should_exit = True
        thread.join(30)


def test_two_workers_through_kfp_local_gate_serve_and_reproduce(tmp_path, monkeypatch):
    monkeypatch.setenv("CIVICML_REVISION", "test-revision")
    raw = yaml.safe_load((ROOT / "civicml.yaml").read_text())
    raw["data"]["demo"]["rows"] = 3000
    raw["tuning"].update(max_trials=2, max_failed_trials=1)
    raw["policy"]["fairness"] = []
    raw["policy"]["min_metrics"] = {"roc_auc": 0.55}
    raw["storage"]["uri"] = str(tmp_path / "store")
    (tmp_path / "civicml.yaml").write_text(yaml.safe_dump(raw))

    res = _cli("run", "--set", "training.workers=2", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    assert summary["ok"] and summary["decision"] == "deploy", summary
    version = summary["version"]

    cfg = load_config(tmp_path / "civicml.yaml")
    registry = Registry(LocalStore(cfg.storage.uri))
    man = registry.manifest(version)
    assert man["lineage"]["config"]["training"]["workers"] == 2
    training = man["lineage"]["training"]
    assert training["workers"] == 2 and len(training["shards"]) == 2
    assert sum(s["rows"] for s in training["shards"]) == man["lineage"]["rows"]["train"]
    assert all(s["fingerprint"].startswith("sha256:") for s in training["shards"])
    assert registry.get_alias("champion") == version and registry.verify(version) == []

    # The champion serves over real HTTP, with the scores of the stored model.
    model_dir = tmp_path / "champion-model"
    model_dir.mkdir()
    for name in ("model.json", "model.ubj"):
        (model_dir / name).write_bytes(registry.read_artifact(version, f"model/{name}"))
    sample = generate_benefits(20, seed=107)  # fresh rows, not the training sample
    served = _serve_and_infer(cfg, registry, sample)
    assert served == pytest.approx(load_model(model_dir).predict_proba(sample).tolist())

    rep = _cli("reproduce", version, "--store", cfg.storage.uri, "--json", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr[-3000:] + rep.stdout[-2000:]
    result = json.loads(rep.stdout)
    assert result["identical"] is True
    assert result["reproduced_model_sha256"] == man["model_sha256"]
    assert not [d for d in result["differences"] if d["input"] in {"training shards", "data fingerprint"}]


def _parent(pid: int) -> int:
    try:
        # /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ")".
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _descends_from_this_test(pid: int) -> bool:
    """True for this test's own processes: other sessions on the machine run workers too."""
    me = os.getpid()
    while pid > 1:
        pid = _parent(pid)
        if pid == me:
            return True
    return False


def _workers(rank: int) -> list[tuple[int, Path]]:
    """(pid, log) of running distributed workers of this rank started by this test, found through /proc."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or not _descends_from_this_test(int(proc.name)):
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"civicml.modeling.distributed" not in argv:
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"DMLC_TASK_ID={rank}".encode() in env:
            job = Path(argv[argv.index(b"--job") + 1].decode())
            out.append((int(proc.name), job.parent / f"worker-{rank}.log"))
    return out


def test_a_worker_killed_inside_the_pipeline_fails_train_and_commits_no_version(tmp_path):
    import os
    import signal
    import time

    from civicml.orchestration.local import failure_detail, run_pipeline

    cfg = demo_config(
        tmp_path / "store",
        3000,
        1,
        {
            "tuning.max_failed_trials": 1,
            "model.params": {"n_estimators": 1500, "max_depth": 6},
            "training.workers": 2,
        },
    )
    killed: dict = {}

    def killer():
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not killed:
            for pid, log in _workers(1):
                if log.is_file() and "training" in log.read_text(errors="replace"):
                    time.sleep(0.3)
                    os.kill(pid, signal.SIGKILL)
                    killed["pid"] = pid
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    events = []
    run = run_pipeline(cfg, on_event=lambda task, what: events.append((task, what)))
    killed.setdefault("done", True)
    assert "pid" in killed, "no worker was killed"
    assert not run.ok and ("train", "FAILURE") in events
    detail = failure_detail(run)
    assert f"DistributedTrainingError: distributed training failed: worker 1 of 2 (pid {killed['pid']}) " in detail
    assert "was killed by signal SIGKILL" in detail
    assert [t for t, what in events if what == "SUCCESS"] == ["validate-data", "tune"]
    registry = Registry(LocalStore(cfg.storage.uri))
    assert registry.versions() == [] and registry.get_alias("champion") is None
