"""Run the compiled training pipeline on this machine through `kfp.local`.

There is no separate local implementation of any step: the same compiled YAML that a
cluster runs (the one that ships with civicml, `civicml.orchestration.compiled`) is loaded
and executed by `kfp.local.SubprocessRunner(use_venv=False)` in the current environment,
with the run's config as its `config_json` argument. kfp.local ignores the YAML's image and
Kubernetes settings. Each step process hands its work to a warm host started for the run
(`civicml.steps.host`; `CIVICML_STEP_HOST=off` opts out), which imported the heavy libraries once.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from civicml.config import RunConfig
from civicml.orchestration.compiled import shipped_pipeline
from civicml.steps import host
from civicml.steps.host import HOST_LOG

_TASK_START = re.compile(r"Executing task '([\w-]+)'")
_TASK_END = re.compile(r"Task '([\w-]+)' finished with status (\S+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class LocalRun:
    """What a local run produced."""

    version: str
    ok: bool
    log_path: Path
    seconds: float
    step_seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    temp_root: Path | None = None

    def cleanup(self) -> None:
        """Remove the temporary folder of a run on a remote store (call once the log has been read)."""
        if self.temp_root is not None:
            shutil.rmtree(self.temp_root, ignore_errors=True)
            self.temp_root = None


class _ProgressTee(io.TextIOBase):
    """Copies kfp.local's output to a log file and reports task starts/ends as they happen."""

    def __init__(self, log, on_event: Callable[[str, str], None] | None):
        self.log = log
        self.on_event = on_event
        self.buf = ""

    def write(self, s: str) -> int:
        self.log.write(s)
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            clean = _ANSI.sub("", line)
            if self.on_event:
                if m := _TASK_START.search(clean):
                    self.on_event(m.group(1), "start")
                elif m := _TASK_END.search(clean):
                    self.on_event(m.group(1), m.group(2))
        return len(s)

    def flush(self) -> None:
        self.log.flush()


def run_pipeline(
    cfg: RunConfig,
    version: str = "",
    workdir: str | Path | None = None,
    on_event: Callable[[str, str], None] | None = None,
    pipeline_yaml: str | Path | None = None,
    keep_outputs: bool = False,
) -> LocalRun:
    """Execute the shipped training pipeline (or `pipeline_yaml`) locally.

    Args:
        cfg: Run config; passed to the pipeline as its `config_json` parameter.
        version: Version id for the new model; generated when empty.
        workdir: Where kfp.local keeps step outputs and the run log (default: `<store>/runs`
            for a local store, else a temp dir).
        on_event: Callback `(task_name, "start" | "SUCCESS" | "FAILURE")` for progress.
        pipeline_yaml: A compiled pipeline to run instead of the shipped one.
        keep_outputs: Keep the steps' outputs (train/valid/test Parquet: personal data) for debugging;
            by default they are removed when the run ends, whatever its outcome.

    Returns:
        A LocalRun with the version id, success flag, log path and per-step seconds.
    """
    from civicml.storage.registry import new_version_id

    version = version or new_version_id()
    run_dir, temp_root = _run_dir(cfg, version, workdir)
    timer = _StepTimer(on_event)
    log_path = run_dir / "kfp-local.log"
    t0 = time.perf_counter()
    try:
        # Started first: the host imports the steps' libraries while kfp loads and the first steps run.
        with host.offered(run_dir / HOST_LOG):
            from kfp import components

            pipeline = components.load_component_from_file(str(_stage_yaml(run_dir, pipeline_yaml)))
            error = _execute(pipeline, cfg, version, run_dir, log_path, timer.event)
    finally:
        if not keep_outputs:
            shutil.rmtree(run_dir / "outputs", ignore_errors=True)
        if temp_root is None and run_dir.parent.name == "runs":
            prune_runs(run_dir.parent, cfg.storage.runs_keep)
    return LocalRun(
        version=version,
        ok=error is None,
        log_path=log_path,
        seconds=time.perf_counter() - t0,
        step_seconds=timer.seconds,
        error=error,
        temp_root=temp_root if not keep_outputs else None,
    )


def _run_dir(cfg: RunConfig, version: str, workdir: str | Path | None) -> tuple[Path, Path | None]:
    """The run's folder (created) and the temporary root to remove later (None for `<store>/runs`)."""
    from civicml.storage.store import resolve_store_uri

    temp_root = None
    if workdir is None:
        uri = resolve_store_uri(cfg.storage.uri)
        if "://" in uri:
            temp_root = workdir = Path(tempfile.mkdtemp(prefix="civicml-run-"))
        else:
            workdir = Path(uri) / "runs"
    run_dir = Path(workdir).resolve() / version
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, temp_root


def _stage_yaml(run_dir: Path, pipeline_yaml: str | Path | None) -> Path:
    """Copy the pipeline to run into the run folder, which keeps the YAML that ran beside its log."""
    source = Path(pipeline_yaml or shipped_pipeline("training"))
    staged = run_dir / "pipeline.yaml"
    if source.resolve() != staged.resolve():
        shutil.copyfile(source, staged)
    return staged


class _StepTimer:
    """Seconds per task from kfp.local's start/end lines, passing each event on to `on_event`."""

    def __init__(self, on_event: Callable[[str, str], None] | None) -> None:
        self.on_event = on_event
        self.starts: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def event(self, task: str, what: str) -> None:
        """Record `(task, "start" | status)` and forward it."""
        now = time.perf_counter()
        if what == "start":
            self.starts[task] = now
        elif task in self.starts:
            self.seconds[task] = now - self.starts[task]
        if self.on_event:
            self.on_event(task, what)


def _execute(
    pipeline: Any, cfg: RunConfig, version: str, run_dir: Path, log_path: Path, event: Callable[[str, str], None]
) -> str | None:
    """Run the loaded pipeline under kfp.local, its output teed to `log_path`; the error, or None on success."""
    from kfp import local

    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir / "outputs"), raise_on_error=True
    )
    with open(log_path, "w") as log:
        tee = _ProgressTee(log, event)
        try:
            with contextlib.redirect_stdout(tee), contextlib.redirect_stderr(tee), warnings.catch_warnings():
                # kfp.local warns that a non-"python" image name may lack dependencies; with
                # use_venv=False the steps run in this environment, which has them all.
                warnings.filterwarnings("ignore", message=".*non-Python base image.*", category=RuntimeWarning)
                pipeline(config_json=cfg.to_json(), version=version)
        except RuntimeError as err:
            return _ANSI.sub("", str(err))
        finally:
            # kfp.local keeps global state; reset so a later init in this process starts clean.
            from kfp.local import config as local_config

            local_config.LocalExecutionConfig.instance = None
    return None


def prune_runs(runs_dir: str | Path, keep: int) -> list[str]:
    """Remove all but the newest `keep` run folders under `<store>/runs` (0 keeps none); return the removed names.

    A run folder holds the compiled pipeline and the kfp.local log of one run (its data outputs are
    already gone unless the run was kept for debugging).
    """
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    runs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: (p.stat().st_mtime, p.name))
    doomed = runs[: max(len(runs) - keep, 0)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return [p.name for p in doomed]


def failure_detail(run: LocalRun, limit: int = 1) -> str:
    """The most useful lines of a failed run's log: the final exception message of the failed step."""
    text = _ANSI.sub("", run.log_path.read_text(errors="replace"))
    # A message may go on over indented "  - ..." lines (ConfigError lists every problem): keep them.
    hits = re.findall(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+(?:\n[ \t]+- .+)*)$", text, flags=re.M)
    if not hits:
        return run.error or "pipeline failed; see " + str(run.log_path)
    return "\n".join(f"{name}: {msg}" for name, msg in hits[-limit:])


def read_manifest(cfg: RunConfig, version: str) -> dict[str, Any] | None:
    """The committed manifest of `version`, or None when the run committed nothing."""
    from civicml.storage.registry import Registry, RegistryError
    from civicml.storage.store import open_store

    try:
        return Registry(open_store(cfg.storage.uri), project=cfg.name).manifest(version)
    except RegistryError:
        return None


def version_summary(cfg: RunConfig, manifest: dict[str, Any]) -> dict[str, Any]:
    """What `civicml run` reports of a committed version: metrics, gate, champion, where its card is."""
    from civicml.storage.registry import Registry
    from civicml.storage.store import open_store

    store = open_store(cfg.storage.uri)
    registry = Registry(store, project=cfg.name)
    card_key = manifest["artifacts"].get("model_card.html", {}).get("key")
    card = store.local_path(card_key) if card_key else None
    return {
        "metrics": manifest["metrics"],
        "decision": manifest["gate"]["decision"],
        "reason": manifest["gate"]["reason"],
        "champion": registry.get_alias("champion"),
        "model_card": str(card) if card else f"{store.describe()}/{card_key}",
        "store": store.describe(),
        "data_warnings": manifest.get("data_warnings", []),
    }
