"""Server processes for the test suite: binaries, free ports, start, readiness wait, stop.

Every server runs in its own process group with its output in a log file, so a failed start
can name the binary and show the tail of its log, and stopping kills the whole group (no
orphan children). `stop_all` is the last line of defence at interpreter exit.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
SKIP_ENV = "CIVICML_SKIP_CLUSTER"

_RUNNING: list[Server] = []


class ServerError(RuntimeError):
    """A test server could not be built, started or reached."""


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: ask the kernel to SIGTERM us when the parent dies.

    atexit cannot run when pytest is SIGKILLed (a CI timeout, an OOM kill), so without this the
    servers outlive the run and hold their ports and data directories. The signal fires when the
    *thread* that forked exits, so servers are started from the main thread (session fixtures).
    If the parent already died between fork and prctl, exit at once.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: stop_all() at exit is all we have
        return
    if os.getppid() != parent:
        os._exit(1)


def skip_requested() -> bool:
    """True when the developer explicitly opted out of the real servers (never allowed in CI)."""
    return os.environ.get(SKIP_ENV, "") not in ("", "0")


def require_real_servers() -> None:
    """In a pytest fixture: skip only on the explicit opt-out (the run summary says so loudly)."""
    if skip_requested():
        import pytest

        pytest.skip(f"{SKIP_ENV} is set: real MinIO / Kubernetes tests are switched off")


def bin_dir() -> Path:
    """The cache directory of the pinned binaries (see build.sh; nothing is built here)."""
    out = subprocess.run([str(BUILD_SCRIPT), "--print-bin-dir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def ensure_binaries(*names: str) -> Path:
    """Return the bin dir holding `names`, building what is missing (waits on another build's lock).

    Raises:
        ServerError: Go is missing or the build failed; the message carries build.sh's reason.
    """
    directory = bin_dir()
    if all((directory / n).is_file() for n in names):
        return directory
    targets = sorted({_TARGET_OF[n] for n in names})
    proc = subprocess.run([str(BUILD_SCRIPT), *targets], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ServerError(
            f"building the test servers failed ({BUILD_SCRIPT.name} {' '.join(targets)}):\n"
            + proc.stderr[-4000:]
            + f"\nWithout Go, opt out of the real-server tests explicitly with {SKIP_ENV}=1 (never in CI)."
        )
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise ServerError(f"{BUILD_SCRIPT.name} finished but {', '.join(missing)} is missing from {directory}")
    return directory


_TARGET_OF = {
    "minio": "minio",
    "kwok": "kwok",
    **{n: "kube" for n in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")},
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One running server process (its own process group) and where its output goes."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Server:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # own process group: stop() kills children too
                preexec_fn=functools.partial(_die_with_parent, os.getpid())
                if sys.platform.startswith("linux")
                else None,
            )
        _RUNNING.append(self)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text[-lines:])

    def fail(self, why: str) -> ServerError:
        return ServerError(f"{self.name} ({self.argv[0]}) {why}; last lines of {self.log_path}:\n{self.log_tail()}")

    def wait_ready(self, probe: Callable[[], bool], timeout: float = 60.0, what: str = "ready") -> None:
        """Poll `probe` until it returns True; raise naming the binary and its log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                code = self.proc.returncode if self.proc else None
                raise self.fail(f"exited with code {code} before it was {what}")
            try:
                if probe():
                    return
            except (OSError, urllib.error.URLError, ssl.SSLError):
                pass
            time.sleep(0.2)
        raise self.fail(f"was not {what} within {timeout:g}s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout` (idempotent)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
        # Children that outlived the leader (same group) go too.
        _signal_group(self.proc.pid, signal.SIGKILL)
        if self in _RUNNING:
            _RUNNING.remove(self)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def http_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> bool:
    """True when GET `url` answers 200."""
    with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:  # noqa: S310 - loopback test URL
        return resp.status == 200


@atexit.register
def stop_all() -> None:
    """Stop every server still running (newest first): no orphans even if a fixture never finalised."""
    for srv in list(reversed(_RUNNING)):
        srv.stop(timeout=5)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
