"""The warm step host's own process: preload, a standby for the first step, a fork per request.

`civicml.steps.host` says why and how; this is the side that `python -m civicml.steps.host_server
SOCKET` runs. The host never starts a thread, so each fork holds the import state whole.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from civicml.steps.host import FRAME_LEN, HOST_ENV, StepHostError, call_here, framed, read_exact

# Imported before the standby is forked, so that it and the host share them (every step reads Parquet).
SHARED: tuple[str, ...] = ("pandas", "pyarrow.parquet")
# In pipeline order, so the first steps find what they need early; names that fail to import are
# reported in the host's log and left to the step (which then fails with its own message).
PRELOAD: tuple[str, ...] = (
    "xgboost",  # with scikit-learn and scipy.stats: the longest, and tune needs it first
    "sklearn.metrics",
    "optuna",
    "civicml.steps.tuning",
    "civicml.tuning.optuna_backend",
    "civicml.steps.training",
    "civicml.modeling.persistence",
    "fairlearn.metrics",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "civicml.evaluation.evaluate",
    "civicml.steps.evaluation",
    "civicml.reporting.render:warm_templates",
    "civicml.steps.gating",
    "civicml.steps.registration",
    "civicml.reporting.card",
    "civicml.steps.deployment",
    "civicml.steps.validate",
    "civicml.steps.drift",
)
# A step waits for the host to import these (and what comes before them) rather than import them
# itself: the host is already part-way through, on the other core.
NEEDS: dict[str, str] = {
    "tune": "civicml.tuning.optuna_backend",
    "train": "civicml.modeling.persistence",
    "evaluate": "civicml.steps.evaluation",
    "register": "civicml.reporting.card",
}
_ORPHAN_CHECK_SECONDS = 1.0
# What the standby imports for the run's first request (validate-data, or monitor-drift).
FIRST: tuple[str, ...] = ("civicml.config", "civicml.steps.validate", "civicml.steps.drift")


def serve(
    address: str,
    preload: Sequence[str] = PRELOAD,
    first: Sequence[str] = FIRST,
    shared: Sequence[str] = SHARED,
    step: Callable[[str, Sequence[Any], dict[str, Any]], Any] = call_here,
) -> None:
    """Listen on `address`, import `preload` between requests, fork a worker per request; never returns.

    The host imports `shared`, then forks a standby that imports only `first` and takes the run's
    first request if it comes before the host is done importing: the first step (validate-data)
    needs little, and waiting for XGBoost and matplotlib would cost it more than they save.

    Args:
        address: The Unix socket path to bind (its directory should be private).
        preload: Modules to import, in order, while no request waits (`module` or `module:function`
            to call once imported, e.g. to compile templates).
        first: What the standby imports for the first request.
        shared: What the host imports before it forks the standby.
        step: Runs a step in a worker, `(name, args, kwargs) -> result` (tests pass their own).
    """
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    parent = os.getppid()  # a run killed outright cannot stop its host: the host notices instead
    listener.bind(address)
    os.chmod(address, 0o600)
    listener.listen(16)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    for entry in shared:
        _preload(entry)
    retire_r, retire_write = os.pipe()
    gc.freeze()
    if os.fork() == 0:
        os.close(retire_write)
        _standby(listener, retire_r, first, step)
    os.close(retire_r)
    retire_w: int | None = retire_write
    done = 0  # entries of `preload` imported so far, in order
    waiting: list[tuple[socket.socket, dict[str, Any], list[int]]] = []
    while True:
        for item in [w for w in waiting if _needs(w[1].get("step"), preload) < done]:
            waiting.remove(item)
            with item[0]:
                _fork(listener, *item, step)
        ready, _, _ = select.select([listener], [], [], 0 if done < len(preload) else _ORPHAN_CHECK_SECONDS)
        if os.getppid() != parent:
            _say("its run is gone (the parent process ended); stopping")
            os._exit(0)
        if ready:
            conn = _accept(listener)
            request, fds = _request(conn) if conn is not None else (None, [])
            if conn is not None and request is not None:
                waiting.append((conn, request, fds))
                retire_w = _retire(retire_w)  # the host took the first request: the standby is not needed
            elif conn is not None:
                conn.close()
        elif done < len(preload):
            _preload(preload[done])
            done += 1
            if done == len(preload):
                retire_w = _retire(retire_w)  # the standby, if still idle, goes: the host is warmer now


def _retire(retire_w: int | None) -> int | None:
    """Tell the standby to go (EOF on its pipe), once; the descriptor left (none)."""
    if retire_w is not None:
        os.close(retire_w)
    return None


def _needs(step: Any, preload: Sequence[str]) -> int:
    """Index of the last `preload` entry `step` waits for (-1: none, serve it at once)."""
    entry = NEEDS.get(step) if isinstance(step, str) else None
    return preload.index(entry) if entry in preload else -1


def _standby(listener: socket.socket, retire: int, first: Sequence[str], step: Callable[..., Any]) -> None:
    """Import `first`, then take one request (and become its worker), unless the host retires it first."""
    try:
        for module in first:
            _preload(module)
        while True:
            ready, _, _ = select.select([retire, listener.fileno()], [], [])
            if retire in ready:
                break
            conn = _accept(listener)
            request, fds = _request(conn) if conn is not None else (None, [])
            if conn is not None and request is not None:
                _say(f"serving {request.get('step')}")
                os.close(retire)
                listener.close()
                _work(conn, request, fds, step)
            elif conn is not None:
                conn.close()
    finally:
        os._exit(0)


def _accept(listener: socket.socket) -> socket.socket | None:
    """A waiting connection, or None when another process (host or standby) took it first."""
    listener.setblocking(False)
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return None
    conn.setblocking(True)
    return conn


def _say(message: str) -> None:
    now = time.time()
    stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    print(f"{stamp} step host {os.getpid()}: {message}", file=sys.stderr, flush=True)


def _preload(entry: str) -> None:
    module, _, function = entry.partition(":")
    t0 = time.perf_counter()
    try:
        loaded = importlib.import_module(module)
        if function:
            getattr(loaded, function)()
    except Exception as err:  # noqa: BLE001  (the step that needs it will fail with its own message)
        _say(f"{entry} failed: {err!r}")
        return
    _say(f"{entry} in {time.perf_counter() - t0:.2f} s")


def _request(conn: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """Read one request and its two descriptors; a malformed request, or another user's, is dropped."""
    conn.settimeout(10)
    fds: list[int] = []
    try:
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        head, fds, _, _ = socket.recv_fds(conn, FRAME_LEN.size, 2)
        body = read_exact(conn, FRAME_LEN.unpack(head)[0]) if len(head) == FRAME_LEN.size else None
        if uid != os.getuid() or len(fds) != 2 or body is None:
            raise ValueError(f"uid {uid}, {len(fds)} descriptors, body {'missing' if body is None else 'read'}")
        request = json.loads(body)
    except (OSError, ValueError, struct.error) as err:
        _say(f"dropped a request: {err}")
        for fd in fds:
            os.close(fd)
        return None, []
    conn.settimeout(None)
    _say(f"request for {request.get('step')}")
    return request, fds


def _fork(
    listener: socket.socket, conn: socket.socket, request: dict[str, Any], fds: list[int], step: Callable[..., Any]
) -> None:
    """Fork the worker of one request; the host keeps none of its descriptors."""
    _say(f"serving {request.get('step')}")
    # What is imported so far is left out of the worker's garbage collections: a collection writes to
    # every object it visits, which would copy the host's pages into the worker one by one.
    gc.freeze()
    if os.fork() == 0:  # the worker
        listener.close()
        _work(conn, request, fds, step)
    for fd in fds:
        os.close(fd)


def _work(
    conn: socket.socket,
    request: dict[str, Any],
    fds: list[int],
    step: Callable[[str, Sequence[Any], dict[str, Any]], Any],
) -> None:
    """In the forked worker: become the step's process, run the step, answer, exit."""
    code = 0
    try:
        _become(request, fds)
        # The component waits on this socket; if it goes away (killed, cancelled) so does its step.
        threading.Thread(target=_exit_when_closed, args=(conn,), daemon=True).start()
        try:
            answer: tuple[Any, ...] = ("ok", step(request["step"], request["args"], request["kwargs"]))
        except BaseException as exc:  # noqa: BLE001  (every failure goes back to the component, which raises it)
            answer = _failure(exc)
        payload = _picklable(answer)
        sys.stdout.flush()
        sys.stderr.flush()
        conn.sendall(framed(payload))
    except BaseException:  # noqa: BLE001  (a worker must never return into the host's loop)
        traceback.print_exc()
        code = 70
    finally:
        os._exit(code)


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """Take the component's stdout/stderr, directory and environment; default signals; fresh randomness."""
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in fds:
        os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    # New streams over the new descriptors: whatever the host's sys.stdout was, the step prints to its component.
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(HOST_ENV, None)
    if "numpy" in sys.modules:
        # A fresh process seeds numpy's global generator from the OS; a fork would share the host's.
        sys.modules["numpy"].random.seed()


def _exit_when_closed(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.recv(1)
    os._exit(75)


def _failure(exc: BaseException) -> tuple[Any, ...]:
    return ("error", exc, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc), traceback.format_exc())


def _picklable(answer: tuple[Any, ...]) -> bytes:
    """The answer pickled; an exception that does not survive pickling travels as its type and message."""
    try:
        payload = pickle.dumps(answer)
        pickle.loads(payload)
        return payload
    except Exception as err:  # noqa: BLE001
        if answer[0] == "ok":
            return pickle.dumps(_failure(StepHostError(f"the step's result cannot be sent back: {err}")))
        return pickle.dumps(("error", None, *answer[2:]))


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m civicml.steps.host SOCKET`: serve until terminated."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise SystemExit("usage: python -m civicml.steps.host SOCKET")
    # Stopped by its run (SIGTERM) or with it (Ctrl-C reaches the whole process group): no traceback.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))
    serve(args[0])


if __name__ == "__main__":
    main()
