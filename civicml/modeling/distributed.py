"""Distributed XGBoost: N workers on XGBoost's collective, each reading only its shard of the training split.

One worker entrypoint, two launchers. Every worker reads the `DMLC_*` variables that Kubeflow
Trainer's XGBoost plugin injects into each node of a `TrainJob` on the `xgboost-distributed`
runtime; rank 0 starts XGBoost's `RabitTracker` (as the Trainer's XGBoost guide does) and every
rank fits inside `xgboost.collective.CommunicatorContext` on its own shard, so the histograms are
all-reduced and all ranks grow the same trees. Rank 0 saves the model with
`civicml.modeling.persistence.save_model`, so a distributed model has the same files as a
single-process one.

* Locally `train_distributed` starts the N workers as processes on loopback with those
  variables, watches them, and turns a dead worker into one `DistributedTrainingError` that
  names it (the others are stopped, no model is written).
* On a cluster `civicml.deploy.trainjob` submits a `TrainJob` whose nodes run
  ``python -m civicml.modeling.distributed --job-key KEY``; the job and the shards are in
  the store under the run's staging prefix.

The feature spec (categories, classes) is fitted once on the whole training split by
`validate_data` and shipped to the workers in the job: every shard encodes categories with
the same codes.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from civicml.modeling.shards import (  # noqa: F401  (re-exported: callers import these from here)
    SHARD_DIR,
    ShardRef,
    WorkerJob,
    shard_bounds,
    shard_name,
    write_shards,
)

# upstream: kubeflow/trainer pkg/constants/constants.go:269-278 @ v2.3.0 (the injected names)
ENV_TRACKER_URI = "DMLC_TRACKER_URI"
ENV_TRACKER_PORT = "DMLC_TRACKER_PORT"
ENV_TASK_ID = "DMLC_TASK_ID"
ENV_NUM_WORKER = "DMLC_NUM_WORKER"
#: The port the Trainer sets for DMLC_TRACKER_PORT (constants.ContainerTrainerPort, constants.go:72 @ v2.3.0).
TRAINER_PORT = 29500
#: A worker's last stdout line: its report (rows, peak RSS, seconds) as JSON after this prefix.
REPORT_PREFIX = "civicml-worker-report "


class DistributedTrainingError(RuntimeError):
    """A worker died, timed out or was given a bad shard; no model was written."""


# -- the worker ----------------------------------------------------------------------------------------------


def _read_shard(job: WorkerJob, rank: int, spec):
    import hashlib

    import pandas as pd

    ref = job.shards[rank]
    if job.shard_root is not None:
        data = (Path(job.shard_root) / ref.key).read_bytes()
    else:
        from civicml.storage.store import open_store

        data = open_store().get_bytes(ref.key)
    digest = hashlib.sha256(data).hexdigest()
    if digest != ref.sha256:
        raise DistributedTrainingError(
            f"shard {ref.key} of worker {rank} has sha256 {digest[:12]}…, the job expects {ref.sha256[:12]}…; "
            "it changed after validate-data wrote it: rerun the pipeline"
        )
    # Only the model's columns: the sensitive attributes in the split never reach a worker's memory.
    return pd.read_parquet(io.BytesIO(data), columns=[*spec.features, spec.target])


def peak_rss_bytes() -> int:
    """This process's resident-set high-water mark, shard and DMatrix included.

    VmHWM, not `getrusage`: Linux carries ru_maxrss across execve, so a worker started from a
    large parent would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _save(model, job: WorkerJob) -> str:
    from civicml.modeling.persistence import model_hash, save_model

    if job.shard_root is not None:
        save_model(model, job.output)
        return model_hash(job.output)
    from civicml.storage.store import open_store

    store = open_store()
    with tempfile.TemporaryDirectory(prefix="civicml-model-") as tmp:
        files = save_model(model, tmp)
        for f in files:
            store.put_bytes(f"{job.output.rstrip('/')}/{f.name}", f.read_bytes())
        return model_hash(tmp)


def run_worker(job: WorkerJob, env: Mapping[str, str], tracker_host: str = "0.0.0.0") -> dict[str, Any]:
    """Train this rank's part of the model; rank 0 also runs the tracker and saves the model.

    Args:
        job: The job (same for every rank).
        env: The `DMLC_*` variables (the Trainer's, or the local launcher's).
        tracker_host: Address rank 0's tracker listens on (all interfaces in a pod, loopback locally).

    Returns:
        This worker's report: rank, rows, peak RSS, seconds (and the model hash on rank 0).
    """
    from xgboost import collective
    from xgboost.tracker import RabitTracker

    from civicml.modeling.estimators import TrainedModel, xgb_estimator
    from civicml.modeling.preprocessing import FeatureSpec

    t0 = time.perf_counter()
    rank, world = int(env[ENV_TASK_ID]), int(env[ENV_NUM_WORKER])
    if world != len(job.shards):
        raise DistributedTrainingError(f"{ENV_NUM_WORKER}={world} but the job has {len(job.shards)} shards")
    tracker = None
    if rank == 0:
        # sortby="task": ranks follow DMLC_TASK_ID, not host names, so the reduction order (and
        # with it every float of the model) is the same on every run with the same N.
        tracker = RabitTracker(
            n_workers=world,
            host_ip=tracker_host,
            port=int(env[ENV_TRACKER_PORT]),
            sortby="task",
            timeout=job.timeout_seconds,
        )
        tracker.start()
    spec = FeatureSpec.from_dict(job.spec)
    shard = _read_shard(job, rank, spec)
    X, y = spec.transform(shard), spec.encode_target(shard[spec.target])
    rows = len(shard)
    del shard
    print(f"civicml worker {rank}/{world}: {rows} rows, training", flush=True)
    report: dict[str, Any] = {"rank": rank, "workers": world, "rows": rows}
    with collective.CommunicatorContext(
        dmlc_tracker_uri=env[ENV_TRACKER_URI],
        dmlc_tracker_port=int(env[ENV_TRACKER_PORT]),
        dmlc_task_id=str(rank),
        dmlc_timeout=job.timeout_seconds,
    ):
        est = xgb_estimator(spec, job.params, job.seed, job.n_threads)
        est.fit(X, y, verbose=False)
        if collective.get_rank() == 0:
            report["model_sha256"] = _save(TrainedModel("xgboost", spec, job.params, est), job)
    if tracker is not None:
        tracker.wait_for()
    report.update(peak_rss_bytes=peak_rss_bytes(), seconds=round(time.perf_counter() - t0, 3))
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m civicml.modeling.distributed --job PATH | --job-key KEY`: one worker."""
    ap = argparse.ArgumentParser(prog="python -m civicml.modeling.distributed", description=main.__doc__)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--job", help="job JSON file (local launcher)")
    where.add_argument("--job-key", help="store key of the job JSON (TrainJob; store from CIVICML_STORE_URI)")
    ap.add_argument("--tracker-host", default="0.0.0.0", help="address rank 0's RabitTracker listens on")
    args = ap.parse_args(argv)
    rank = os.environ.get(ENV_TASK_ID, "?")
    try:
        missing = [k for k in (ENV_TRACKER_URI, ENV_TRACKER_PORT, ENV_TASK_ID, ENV_NUM_WORKER) if k not in os.environ]
        if missing:
            raise DistributedTrainingError(
                f"missing {', '.join(missing)}: run under a Kubeflow Trainer xgboost-distributed TrainJob "
                "or civicml's local launcher"
            )
        if args.job:
            raw = Path(args.job).read_text()
        else:
            from civicml.storage.store import open_store

            raw = open_store().get_bytes(args.job_key).decode()
        report = run_worker(WorkerJob.model_validate_json(raw), os.environ, args.tracker_host)
    except Exception as err:  # noqa: BLE001 - the launcher shows this line; the traceback stays in the log
        import traceback

        traceback.print_exc()
        print(f"civicml worker {rank}: error: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return 1
    print(REPORT_PREFIX + json.dumps(report, sort_keys=True), flush=True)
    return 0


# -- the local launcher --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 8) -> list[str]:
    """The last non-empty lines of a log file."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL this worker when the launcher dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the launcher's own cleanup still stops workers on any Python exception


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 5
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def _failure(rank: int, n: int, proc: subprocess.Popen, log: Path, elapsed: float) -> DistributedTrainingError:
    lines = tail(log)
    # "| " keeps a quoted traceback line from reading as this error's own last line (failure_detail).
    shown = "\n".join(f"    | {line}" for line in lines) or "    | (no output)"
    return DistributedTrainingError(
        f"distributed training failed: worker {rank} of {n} (pid {proc.pid}) {_how(proc.returncode)} after "
        f"{elapsed:.1f}s; the other worker(s) were stopped and no model was written. "
        f"Last lines of worker {rank}'s log ({log}):\n{shown}"
    )


def _reports(logs: list[Path]) -> list[dict[str, Any]]:
    out = []
    for log in logs:
        line = next((x for x in reversed(tail(log, 3)) if x.startswith(REPORT_PREFIX)), None)
        out.append(json.loads(line[len(REPORT_PREFIX) :]) if line else {})
    return out


def _wait(procs, logs, n: int, timeout: float, t0: float) -> None:
    while True:
        codes = [p.poll() for p in procs]
        dead = [i for i, c in enumerate(codes) if c not in (None, 0)]
        if dead:
            # The first death is the cause; peers then fail on the broken collective. Among deaths
            # seen in the same poll, a signal (negative code) is the cause rather than its victims.
            cause = min(dead, key=lambda i: (codes[i] >= 0, i))
            err = _failure(cause, n, procs[cause], logs[cause], time.monotonic() - t0)
            _stop(procs)
            raise err
        if all(c == 0 for c in codes):
            return
        if time.monotonic() - t0 > timeout:
            _stop(procs)
            running = [i for i, c in enumerate(codes) if c is None]
            raise DistributedTrainingError(
                f"distributed training did not finish within {timeout:g}s (training.timeout_seconds); "
                f"worker(s) {running} were still running and were stopped; no model was written"
            )
        time.sleep(0.05)


def _start_worker(job_path: Path, log: Path, rank: int, n: int, port: int) -> subprocess.Popen:
    """One local worker process with the variables Kubeflow Trainer would inject, logging to `log`."""
    env = {
        **os.environ,
        ENV_TRACKER_URI: "127.0.0.1",
        ENV_TRACKER_PORT: str(port),
        ENV_TASK_ID: str(rank),
        ENV_NUM_WORKER: str(n),
        "PYTHONUNBUFFERED": "1",
        # Every round waits for the slowest worker in an all-reduce; spinning OpenMP threads
        # would steal its cores (measured 20x slower on 2 shared cores).
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
    }
    cmd = [sys.executable, "-m", "civicml.modeling.distributed", "--job", str(job_path), "--tracker-host", "127.0.0.1"]
    with log.open("wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent)


def train_distributed(
    job: WorkerJob,
    model_dir: str | Path,
    *,
    workdir: str | Path | None = None,
    on_started: Callable[[list[subprocess.Popen], list[Path]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the job's N workers as local processes on loopback; the model lands in `model_dir`.

    Args:
        job: The job; `shard_root` must be a local directory.
        model_dir: Where the model files go once every worker has succeeded.
        workdir: Directory for the job file, logs and the model in progress (default: a temp dir).
        on_started: Called with the processes and their log paths once all are started.

    Returns:
        One report per worker (rows, peak RSS, seconds), by rank.

    Raises:
        DistributedTrainingError: a worker died or the job timed out; names the worker.
    """
    n = len(job.shards)
    with tempfile.TemporaryDirectory(prefix="civicml-dist-") as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        staged = work / "model"
        job = job.model_copy(update={"output": str(staged)})
        job_path = work / "job.json"
        job_path.write_text(job.model_dump_json(indent=2))
        port = _free_port()
        procs, logs = [], []
        t0 = time.monotonic()
        try:
            for rank in range(n):
                log = work / f"worker-{rank}.log"
                procs.append(_start_worker(job_path, log, rank, n, port))
                logs.append(log)
            if on_started:
                on_started(procs, logs)
            _wait(procs, logs, n, job.timeout_seconds, t0)
        except BaseException:
            _stop(procs)
            raise
        reports = _reports(logs)
        out = Path(model_dir)
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(staged.iterdir()):
            (out / f.name).write_bytes(f.read_bytes())
    return reports


if __name__ == "__main__":
    sys.exit(main())
