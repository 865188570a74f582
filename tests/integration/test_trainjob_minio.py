"""The TrainJob backend end to end on the real MinIO: shards staged, workers started as the Trainer starts them.

No Kubeflow Trainer controller runs here, so a stand-in plays it at the API edge only: on create it
starts `numNodes` processes with the TrainJob's own command and env (Secret/ConfigMap references
resolved from this test's environment, as the kubelet would) plus the `DMLC_*` variables the
xgboost-distributed runtime injects, and reports Complete/Failed from their exit codes. Everything
else is civicml's real code: validate-data's shards, `stage_job`'s uploads to MinIO, the workers
reading the job and their shard from MinIO by key, rank 0's model written to the store and read back.

# upstream: kubeflow/trainer pkg/runtime/framework/plugins/xgboost/xgboost.go:59-69 @ v2.3.0 (DMLC_* injected)
# upstream: kubeflow/trainer pkg/constants/constants.go:69-72 @ v2.3.0 (DMLC_TRACKER_PORT is the trainer port)
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from civicml import steps
from civicml.config import load_config
from civicml.deploy import trainjob as tj
from civicml.storage.store import open_store

FAST = {"data.demo.rows": 3000, "model.params": {"n_estimators": 25, "max_depth": 3}, "model.n_threads": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StandInTrainer:
    """CustomObjectsApi + CoreV1Api stand-in: runs the TrainJob's nodes as local processes."""

    def __init__(self, logdir: Path, kill_rank: int | None = None):
        self.logdir, self.kill_rank = logdir, kill_rank
        self.body: dict | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.deleted = False

    # CustomObjectsApi
    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        assert (group, version, plural) == (tj.GROUP, tj.VERSION, tj.PLURAL)
        self.body = copy.deepcopy(body)
        trainer = body["spec"]["trainer"]
        n, port, name = trainer["numNodes"], _free_port(), body["metadata"]["name"]
        for rank in range(n):
            env = {"PATH": os.environ["PATH"]}
            for e in trainer["env"]:
                # valueFrom (Secret/ConfigMap keys) resolves to what this test's "cluster" holds.
                env[e["name"]] = e["value"] if "value" in e else os.environ.get(e["name"], "")
            env.update(
                DMLC_TRACKER_URI="127.0.0.1",
                DMLC_TRACKER_PORT=str(port),
                DMLC_TASK_ID=str(rank),
                DMLC_NUM_WORKER=str(n),
            )
            env["HOME"] = str(self.logdir)
            cmd = [sys.executable if trainer["command"][0] == "python" else trainer["command"][0]]
            cmd += trainer["command"][1:] + list(trainer.get("args") or [])
            if rank == self.kill_rank:
                cmd = [sys.executable, "-c", "import sys; print('worker lost its node'); sys.exit(137)"]
            pod = f"{name}-node-0-{rank}"
            with (self.logdir / f"{pod}.log").open("wb") as fh:
                self.procs[pod] = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        obj = copy.deepcopy(self.body)
        codes = [p.poll() for p in self.procs.values()]
        if any(c not in (None, 0) for c in codes):
            cond = ("Failed", "BackoffLimitExceeded", "a node exited non-zero")
        elif all(c == 0 for c in codes):
            cond = ("Complete", "JobsCompleted", "")
        else:
            return obj
        obj["status"] = {"conditions": [{"type": cond[0], "status": "True", "reason": cond[1], "message": cond[2]}]}
        return obj

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.deleted = True

    # CoreV1Api
    def list_namespaced_pod(self, namespace, label_selector):
        from types import SimpleNamespace

        assert label_selector.endswith("=" + self.body["metadata"]["name"])
        return SimpleNamespace(items=[SimpleNamespace(metadata=SimpleNamespace(name=p)) for p in self.procs])

    def read_namespaced_pod_log(self, name, namespace, container, tail_lines):
        return "\n".join((self.logdir / f"{name}.log").read_text().splitlines()[-tail_lines:])

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def work(tmp_path, monkeypatch, s3_env):
    monkeypatch.chdir(tmp_path)
    return tmp_path, s3_env


def _cfg(uri: str, backend: str):
    over = {**FAST, "storage.uri": uri, "training.workers": 2, "training.backend": backend}
    return load_config(None, {**over, "training.poll_seconds": 0.2, "training.timeout_seconds": 600})


def test_trainjob_backend_stages_on_minio_trains_and_reads_the_model_back(work, monkeypatch):
    tmp, s3 = work
    cfg = _cfg(s3.uri, "trainjob")
    info = steps.validate_data(cfg, str(tmp / "data"))
    trainer = StandInTrainer(tmp)
    monkeypatch.setattr(tj, "_default_apis", lambda: (trainer, trainer))
    try:
        result = steps.train(cfg, str(tmp / "data"), None, str(tmp / "cluster-model"))
    finally:
        trainer.stop()
    version = info["version"]
    store = open_store(s3.uri)
    # The shards and the job went to MinIO; the workers read them there (their env has no local path).
    assert store.exists(tj.job_key(version))
    assert len(store.list_keys(f"staging/{version}/train-shards/")) == 2
    assert [r["rank"] for r in result["training"]["reports"]] == [0, 1] and trainer.deleted
    # Same N and seed as the local launcher: the same model bytes, whichever backend ran the workers.
    local = steps.train(_cfg(s3.uri, "local"), str(tmp / "data"), None, str(tmp / "local-model"))
    assert result["model_sha256"] == local["model_sha256"]
    assert (tmp / "cluster-model" / "model.ubj").read_bytes() == (tmp / "local-model" / "model.ubj").read_bytes()


def test_a_failed_node_is_reported_with_its_pods_log_lines(work, monkeypatch):
    tmp, s3 = work
    cfg = _cfg(s3.uri, "trainjob")
    steps.validate_data(cfg, str(tmp / "data"))
    trainer = StandInTrainer(tmp, kill_rank=1)
    monkeypatch.setattr(tj, "_default_apis", lambda: (trainer, trainer))
    try:
        with pytest.raises(tj.TrainJobError) as err:
            steps.train(cfg, str(tmp / "data"), None, str(tmp / "model"))
    finally:
        trainer.stop()
    text = str(err.value)
    assert "failed: BackoffLimitExceeded" in text and "node-0-1:" in text and "worker lost its node" in text
    assert not (tmp / "model" / "model.ubj").exists()
