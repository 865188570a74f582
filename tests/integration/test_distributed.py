"""`training.workers: N`: N real worker processes on XGBoost's collective, on loopback.

Each worker reads only its shard; the same N and seed give the same model bytes; a worker killed
mid-training fails the step with one error that names it, and no version is committed.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from civicml import steps
from civicml.config import load_config
from civicml.governance.audit import AuditLog
from civicml.modeling.distributed import (
    DistributedTrainingError,
    WorkerJob,
    main,
    shard_bounds,
    train_distributed,
)
from civicml.modeling.persistence import load_model
from civicml.storage.registry import Registry
from civicml.storage.store import LocalStore

FAST = {"data.demo.rows": 3000, "model.params": {"n_estimators": 25, "max_depth": 3}, "model.n_threads": 1}


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.delenv("CIVICML_STORE_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _cfg(work: Path, workers: int, **over):
    return load_config(None, {**FAST, "storage.uri": str(work / "store"), "training.workers": workers, **over})


def test_shard_bounds_cover_every_row_once():
    assert shard_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert shard_bounds(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    with pytest.raises(ValueError, match="at least one row per shard"):
        shard_bounds(2, 3)


def test_each_worker_reads_only_its_shard_and_same_n_gives_same_bytes(work):
    cfg = _cfg(work, 3)
    info = steps.validate_data(cfg, str(work / "data"))
    shards = info["training"]["shards"]
    assert info["training"]["workers"] == 3 and len(shards) == 3
    assert sum(s["rows"] for s in shards) == info["rows"]["train"]
    assert len({s["fingerprint"] for s in shards}) == 3
    first = steps.train(cfg, str(work / "data"), None, str(work / "m1"))
    reports = first["training"]["reports"]
    # Every process saw its own shard's rows, never the whole split.
    assert [r["rows"] for r in reports] == [s["rows"] for s in shards]
    assert [r["rank"] for r in reports] == [0, 1, 2]
    assert all(r["peak_rss_bytes"] > 0 for r in reports)
    second = steps.train(cfg, str(work / "data"), None, str(work / "m2"))
    assert first["model_sha256"] == second["model_sha256"] == reports[0]["model_sha256"]
    assert (work / "m1" / "model.ubj").read_bytes() == (work / "m2" / "model.ubj").read_bytes()
    # Same files as a single-process model, loadable by the same code, categories fitted on the whole split.
    model = load_model(work / "m1")
    spec = json.loads((work / "data" / "feature_spec.json").read_text())
    assert model.spec.to_dict() == spec
    import pandas as pd

    test = pd.read_parquet(work / "data" / "test.parquet")
    scores = model.predict_proba(test)
    assert scores.shape == (len(test),) and 0 < scores.mean() < 1


def test_a_changed_shard_is_refused_by_the_worker(work):
    cfg = _cfg(work, 2)
    info = steps.validate_data(cfg, str(work / "data"))
    shard = work / "data" / "train-shards" / info["training"]["shards"][1]["key"]
    shard.write_bytes(shard.read_bytes() + b"x")
    with pytest.raises(DistributedTrainingError) as err:
        steps.train(cfg, str(work / "data"), None, str(work / "model"))
    msg = str(err.value)
    assert "worker 1 of 2" in msg and "exited with code 1" in msg
    assert "changed after validate-data wrote it" in msg
    assert not (work / "model").exists()


def _kill_when_training(procs, logs, rank: int, killed: dict):
    """Kill worker `rank` once its log says it is inside the collective fit."""

    def watch():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and procs[rank].poll() is None:
            if "training" in logs[rank].read_text(errors="replace"):
                time.sleep(0.3)  # inside fit(): the tracker is up and the ranks are reducing
                os.kill(procs[rank].pid, signal.SIGKILL)
                killed["pid"] = procs[rank].pid
                return
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()


def test_a_worker_killed_mid_training_fails_the_step_and_commits_nothing(work, monkeypatch):
    # Enough rounds that the fit is still running when the kill lands.
    cfg = _cfg(work, 2, **{"model.params": {"n_estimators": 3000, "max_depth": 6}})
    steps.validate_data(cfg, str(work / "data"))
    killed: dict = {}
    real = train_distributed

    def with_kill(job, model_dir, **kw):
        return real(job, model_dir, on_started=lambda p, lg: _kill_when_training(p, lg, 1, killed), **kw)

    monkeypatch.setattr("civicml.modeling.distributed.train_distributed", with_kill)
    t0 = time.monotonic()
    with pytest.raises(DistributedTrainingError) as err:
        steps.train(cfg, str(work / "data"), None, str(work / "model"))
    msg = str(err.value)
    assert killed, "the worker finished before it could be killed"
    assert f"worker 1 of 2 (pid {killed['pid']}) was killed by signal SIGKILL" in msg, msg
    assert "the other worker(s) were stopped and no model was written" in msg
    assert time.monotonic() - t0 < 120  # the peer did not hang on the broken collective
    assert not (work / "model").exists()
    reg = Registry(LocalStore(cfg.storage.uri))
    assert reg.versions() == []
    events = [r for r in AuditLog(reg.store).records() if r["event"] == "training_failed"]
    assert len(events) == 1 and "worker 1 of 2" in events[0]["payload"]["error"]


def test_worker_outside_a_trainjob_says_so(monkeypatch, tmp_path, capsys):
    for k in ("DMLC_TRACKER_URI", "DMLC_TRACKER_PORT", "DMLC_TASK_ID", "DMLC_NUM_WORKER"):
        monkeypatch.delenv(k, raising=False)
    job = tmp_path / "job.json"
    job.write_text(WorkerJob(spec={}, params={}, seed=1, n_threads=1, shards=[], output="").model_dump_json())
    assert main(["--job", str(job)]) == 1
    assert "missing DMLC_TRACKER_URI" in capsys.readouterr().err


_LAUNCHER = """
import json, sys
from civicml.modeling.distributed import WorkerJob, train_distributed
job = WorkerJob.model_validate_json(open(sys.argv[1]).read())
pids = lambda procs, logs: print(json.dumps([p.pid for p in procs]), flush=True)
train_distributed(job, sys.argv[2], on_started=pids)
"""


def test_workers_die_with_a_killed_launcher(work):
    import subprocess
    import sys

    cfg = _cfg(work, 2, **{"model.params": {"n_estimators": 3000, "max_depth": 6}})
    info = steps.validate_data(cfg, str(work / "data"))
    job = WorkerJob(
        spec=json.loads((work / "data" / "feature_spec.json").read_text()),
        params={"n_estimators": 3000, "max_depth": 6},
        seed=1,
        n_threads=1,
        shards=info["training"]["shards"],
        shard_root=str(work / "data" / "train-shards"),
        output="",
    )
    (work / "job.json").write_text(job.model_dump_json())
    launcher = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(work / "job.json"), str(work / "model")],
        stdout=subprocess.PIPE,
        text=True,
    )
    pids = json.loads(launcher.stdout.readline())
    launcher.kill()  # SIGKILL: no Python cleanup runs in the launcher
    launcher.wait(timeout=30)
    deadline = time.monotonic() + 30
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
        time.sleep(0.1)
    assert alive == [], f"workers {alive} outlived their launcher"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"
