"""The warm step host (`civicml.steps.host`): a step run there is the step run here.

A host is forked from the test process with test steps (`_steps`) and preload entries of this
module; the component side is `run_step` itself, in this process or in a subprocess. The last
test runs the shipped pipeline through `kfp.local` with the host and without it (CIVICML_STEP_HOST=off)
and compares what they committed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from civicml.steps import host, host_server
from civicml.steps.host import HOST_ENV, StepHostError, run_step

HOST_ONLY = {"loaded": False}  # set by a preload entry: only the host (not the standby) has it


def mark_loaded() -> None:
    """Preload entry `tests.integration.test_step_host:mark_loaded`: slow, then marks this process."""
    time.sleep(1.0)
    HOST_ONLY["loaded"] = True


class NeedsKeyword(Exception):
    """An exception pickle cannot rebuild (its __init__ takes a keyword)."""

    def __init__(self, *, field: str):
        super().__init__(f"field {field} is wrong")


def _steps(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if name == "echo":
        print("worker says hi on stdout", flush=True)
        print("worker says hi on stderr", file=sys.stderr, flush=True)
        return {
            "cwd": os.getcwd(),
            "env": os.environ.get("STEP_HOST_TEST"),
            "host_env": os.environ.get(HOST_ENV),
            "args": args,
            "kwargs": kwargs,
            "loaded": HOST_ONLY["loaded"],
            "pid": os.getpid(),
        }
    if name == "fail":
        raise ValueError(f"bad input {args[0]!r}: expected a number, e.g. 3")
    if name == "odd_error":
        raise NeedsKeyword(field="age")
    if name == "die":
        os._exit(3)
    if name == "sleep":
        Path(args[0]).write_text(str(os.getpid()))
        time.sleep(60)
    raise AssertionError(name)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A host on a fresh socket, offered to `run_step` in this process; its address."""
    address = str(tmp_path / "s.sock")
    preload, first, shared = ("json", f"{__name__}:mark_loaded"), ("json",), ("json",)
    proc = multiprocessing.get_context("fork").Process(
        target=host_server.serve, args=(address, preload, first, shared, _steps), daemon=True
    )
    proc.start()
    deadline = time.monotonic() + 20
    while not os.path.exists(address):
        assert time.monotonic() < deadline, "the host never bound its socket"
        time.sleep(0.02)
    monkeypatch.setenv(HOST_ENV, address)
    yield address
    proc.kill()
    proc.join(5)


def _until_host(deadline_s: float = 30) -> dict[str, Any]:
    """Ask until the warm host (not the standby) answers."""
    deadline = time.monotonic() + deadline_s
    while True:
        out = run_step("echo")
        if out["loaded"] or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


def test_worker_takes_the_callers_directory_environment_and_output(served, tmp_path):
    # The component is a process of its own whose stdout/stderr kfp.local reads from one pipe.
    work = tmp_path / "work"
    work.mkdir()
    code = "import json; from civicml.steps.host import run_step; print(json.dumps(run_step('echo', 'a', 2, key='v')))"
    env = {**os.environ, HOST_ENV: served, "STEP_HOST_TEST": "from the component"}
    done = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["cwd"] == str(work)
    assert out["env"] == "from the component"
    assert out["host_env"] is None  # a step never offers the host onwards
    assert (out["args"], out["kwargs"]) == (["a", 2], {"key": "v"})
    assert "worker says hi on stdout" in done.stdout
    assert "worker says hi on stderr" in done.stderr


def test_first_request_goes_to_the_standby_later_ones_to_the_warm_host(served):
    first = run_step("echo")
    assert first["loaded"] is False  # answered while the host was still importing
    assert _until_host()["loaded"] is True


def test_the_steps_exception_is_raised_again_in_the_component(served):
    _until_host()
    with pytest.raises(ValueError, match=r"bad input 'x': expected a number, e.g. 3") as info:
        run_step("fail", "x")
    assert any("raised in the run's step host" in note for note in info.value.__notes__)


def test_an_exception_pickle_cannot_rebuild_arrives_as_its_type_and_message(served):
    with pytest.raises(StepHostError, match=r"NeedsKeyword: field age is wrong"):
        run_step("odd_error")


def test_a_worker_that_dies_gives_a_clear_error(served):
    with pytest.raises(StepHostError, match=r"ended without an answer.*CIVICML_STEP_HOST=off"):
        run_step("die")


def test_killing_the_component_stops_its_worker(served, tmp_path):
    # upstream: kubeflow/pipelines sdk/python/kfp/local/subprocess_task_handler.py:108-137 @ kfp 2.17.3:
    # a task is one process whose stdout+stderr pipe kfp.local reads to EOF, in the parent's environment
    # (so the component sees CIVICML_STEP_HOST); a worker that outlived its killed task would hold that
    # pipe open and keep working for nobody.
    pidfile = tmp_path / "worker.pid"
    code = f"from civicml.steps.host import run_step; run_step('sleep', {str(pidfile)!r})"
    caller = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, HOST_ENV: served})
    deadline = time.monotonic() + 30
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline and caller.poll() is None, "the worker never started"
        time.sleep(0.05)
    worker = int(pidfile.read_text())
    caller.send_signal(signal.SIGKILL)
    caller.wait(10)
    deadline = time.monotonic() + 10
    while _alive(worker):
        assert time.monotonic() < deadline, f"worker {worker} still runs after its component was killed"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_host_whose_run_was_killed_stops(tmp_path):
    address = str(tmp_path / "s.sock")
    code = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-m', 'civicml.steps.host_server', {address!r}]); "
        "print(p.pid, flush=True); time.sleep(120)"
    )
    run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    host_pid = int(run.stdout.readline())
    deadline = time.monotonic() + 30
    while not os.path.exists(address):
        assert time.monotonic() < deadline, "the host never bound its socket"
        time.sleep(0.05)
    run.kill()  # SIGKILL: the run cannot stop its host
    run.wait(10)
    deadline = time.monotonic() + 30
    while _alive(host_pid):
        assert time.monotonic() < deadline, f"host {host_pid} still runs after its run was killed"
        time.sleep(0.1)


def test_an_unreachable_host_runs_the_step_here(tmp_path, monkeypatch, capfd):
    (tmp_path / "data_info.json").write_text(json.dumps({"version": "v1", "rows": 3}))
    monkeypatch.setenv(HOST_ENV, str(tmp_path / "nobody-listens.sock"))
    assert run_step("data_info", str(tmp_path)) == {"version": "v1", "rows": 3}
    assert "cannot be reached" in capfd.readouterr().err


def test_an_unknown_step_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(HOST_ENV, host.OFF)
    with pytest.raises(StepHostError, match=r"'rm_rf' is not a step of civicml.steps; expected one of"):
        run_step("rm_rf")


def test_offered_starts_and_stops_a_real_host(tmp_path):
    log = tmp_path / "host.log"
    (tmp_path / "data_info.json").write_text(json.dumps({"version": "v2"}))
    with host.offered(log) as address:
        assert address and os.environ[HOST_ENV] == address
        assert run_step("data_info", str(tmp_path)) == {"version": "v2"}
    assert HOST_ENV not in os.environ
    assert not os.path.exists(address)
    assert "serving data_info" in log.read_text()


@pytest.mark.slow
@pytest.mark.usefixtures("kfp_local_isolated")
def test_the_pipeline_commits_the_same_with_the_host_and_without(tmp_path, monkeypatch):
    from civicml.config import load_config
    from civicml.orchestration.local import HOST_LOG, failure_detail, run_pipeline
    from civicml.storage.registry import Registry
    from civicml.storage.store import LocalStore

    root = Path(__file__).resolve().parents[2]
    committed = {}
    for mode in ("host", "off"):
        if mode == "off":
            monkeypatch.setenv(HOST_ENV, host.OFF)
        over = {"storage.uri": str(tmp_path / mode), "data.demo.rows": 1500, "tuning.max_trials": 2}
        cfg = load_config(root / "civicml.yaml", {**over, "policy.fairness": [], "policy.min_metrics": {}})
        run = run_pipeline(cfg)
        assert run.ok, failure_detail(run)
        manifest = Registry(LocalStore(cfg.storage.uri)).manifest(run.version)
        models = {k: v["sha256"] for k, v in manifest["artifacts"].items() if k.startswith("model/")}
        committed[mode] = (models, manifest["metrics"], manifest["gate"]["decision"])
        host_log = run.log_path.parent / HOST_LOG
        if mode == "host":
            served = host_log.read_text()
            for step in ("validate_data", "tune", "train", "evaluate", "gate", "register"):
                assert f"serving {step}" in served, f"{step} did not run in the host:\n{served}"
        else:
            assert not host_log.exists()
    assert committed["host"][0], "no model files in the manifest"
    assert committed["host"] == committed["off"]
