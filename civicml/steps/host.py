"""A warm host for the steps of a local run: the heavy libraries are imported once, each step runs in a fork.

Why: kfp.local starts every task as a fresh `python -m kfp.dsl.executor_main`, and a fresh
process pays its imports before any work: XGBoost alone imports scikit-learn, which imports
scipy.stats (together ~2 s on two cores), then pandas, pyarrow, fairlearn, matplotlib. At a
thousand rows that is most of a run (issue 18, "fixed cost per heavy step").

How: `civicml run` starts `python -m civicml.steps.host_server SOCKET` before it reads its config
and puts the socket in `CIVICML_STEP_HOST`, which kfp.local passes on to the steps. The host
binds the socket at once, then imports what the steps use, in pipeline order, serving requests
between two imports; a standby forked early takes the first step (validate-data needs little).
A KFP component calls `run_step(name, *args)`: with a host offered it sends the step's name,
arguments, working directory and environment, and passes its own stdout and stderr (SCM_RIGHTS);
the host forks, and the child takes those descriptors, directory and environment as its own, runs
the step function in-process and sends back its result, or the exception it raised, which the
component raises again. The work is the same function on the same inputs in the same
environment; only the imports happened earlier (the committed model and metrics are identical,
`tests/integration/test_step_host.py`). `civicml.steps.host_server` is the host's side.

Without a host (a cluster pod, `CIVICML_STEP_HOST=off`, a host that cannot be reached) the step
runs in the component's own process, as before. The socket lives in a fresh 0700 directory and
the host answers only its own user (SO_PEERCRED).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HOST_ENV = "CIVICML_STEP_HOST"
OFF = "off"
HOST_LOG = "step-host.log"
FRAME_LEN = struct.Struct("!I")
_CONNECT_SECONDS = 2.0  # the host binds its socket within milliseconds of starting; a step rarely waits


class StepHostError(RuntimeError):
    """The host took the step but gave no answer (its worker died), or gave one that cannot be read."""


# ----------------------------------------------------------------------------- the step's side


def run_step(name: str, *args: Any, **kwargs: Any) -> Any:
    """Run step `name` of `civicml.steps` with `args`: in the run's warm host when one is offered, else here.

    Args:
        name: A step function of `civicml.steps` (`validate_data`, `train`, ...).
        *args: Its positional arguments (JSON values: the config as JSON, paths, strings).
        **kwargs: Its keyword arguments (JSON values too).

    Returns:
        What the step function returns.

    Raises:
        Exception: Whatever the step raised, raised again here.
        StepHostError: The host's worker ended without an answer.
    """
    address = os.environ.get(HOST_ENV, "")
    if address and address != OFF:
        conn = _connect(address, name)
        if conn is not None:
            with conn:
                return _ask(conn, name, list(args), kwargs)
    return call_here(name, args, kwargs)


def call_here(name: str, args: Sequence[Any], kwargs: dict[str, Any] | None = None) -> Any:
    """Run step `name` in this process."""
    steps = importlib.import_module("civicml.steps")
    if name not in steps.__all__ or not callable(fn := getattr(steps, name)):
        raise StepHostError(f"{name!r} is not a step of civicml.steps; expected one of {steps.__all__}")
    return fn(*args, **(kwargs or {}))


def _connect(address: str, name: str) -> socket.socket | None:
    deadline = time.monotonic() + _CONNECT_SECONDS
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(address)
            return conn
        except OSError as err:
            conn.close()
            if time.monotonic() > deadline:
                print(
                    f"civicml: the run's step host at {address} cannot be reached ({err}); "
                    f"running {name} in this process",
                    file=sys.stderr,
                )
                return None
            time.sleep(0.05)


def _ask(conn: socket.socket, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    request = {"step": name, "args": args, "kwargs": kwargs, "cwd": os.getcwd(), "env": dict(os.environ)}
    body = json.dumps(request).encode()
    sys.stdout.flush()
    sys.stderr.flush()
    socket.send_fds(conn, [FRAME_LEN.pack(len(body))], [1, 2])
    conn.sendall(body)
    frame = read_frame(conn)
    if frame is None:
        raise StepHostError(
            f"the step host's worker for {name!r} ended without an answer (killed, or out of memory?); "
            "its output, if any, is above. Run again with CIVICML_STEP_HOST=off to run each step in its own process."
        )
    answer = pickle.loads(frame)  # from our own user's host (SO_PEERCRED), same code as this process
    if answer[0] == "ok":
        return answer[1]
    _, exc, kind, text, where = answer
    if exc is None:
        raise StepHostError(f"{kind}: {text}")
    exc.add_note("raised in the run's step host; there:\n" + "".join("    " + line for line in where.splitlines(True)))
    raise exc


def read_exact(conn: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = conn.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(conn: socket.socket) -> bytes | None:
    head = read_exact(conn, FRAME_LEN.size)
    return None if head is None else read_exact(conn, FRAME_LEN.unpack(head)[0])


def framed(payload: bytes) -> bytes:
    return FRAME_LEN.pack(len(payload)) + payload


# ----------------------------------------------------------------------------- the run's side


@contextlib.contextmanager
def offered(log_path: Path | None = None) -> Iterator[str | None]:
    """Start a host for one run and offer it to the steps through the environment; stop it afterwards.

    Yields the socket path, or None when the environment opts out (`CIVICML_STEP_HOST=off`). A host
    offered further up (`civicml run` starts one before it reads the config, for a head start) is
    reused. The host's own lines (what it imported, what it served) are copied to `log_path` at the end.
    """
    offer = os.environ.get(HOST_ENV)
    if offer == OFF:
        yield None
        return
    if offer:
        try:
            yield offer
        finally:
            _copy_log(offer, log_path)
        return
    folder = tempfile.mkdtemp(prefix="civicml-host-")  # 0700; short, for the 108-byte socket path limit
    address = os.path.join(folder, "steps.sock")
    with open(os.path.join(folder, HOST_LOG), "w") as log:
        command = [sys.executable, "-m", "civicml.steps.host_server", address]
        # As the image sets it (Dockerfile): spinning OpenMP threads would fight the host's own imports
        # on the other core. libgomp reads it when XGBoost loads, in the host, so the workers have it too.
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    os.environ[HOST_ENV] = address
    try:
        yield address
    finally:
        os.environ.pop(HOST_ENV, None)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _copy_log(address, log_path)
        shutil.rmtree(folder, ignore_errors=True)


def _copy_log(address: str, log_path: Path | None) -> None:
    if log_path is not None:
        with contextlib.suppress(OSError):
            shutil.copyfile(os.path.join(os.path.dirname(address), HOST_LOG), log_path)
