"""Helpers shared by the benchmark scripts: machine facts, subprocess timing, statistics, configs, servers.

The benchmark scripts are run as files (`python benchmarks/<name>.py`), so this module is
importable from them as `_common` (Python puts the script's directory on the path).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"
PY = sys.executable
CIVICML = str(Path(PY).with_name("civicml"))


# libgomp's default active spin-wait makes XGBoost's 2 OpenMP threads 10-60x slower whenever
# another busy process shares the 2 cores (measured: a 3000-row trial took 17.6 s instead of 0.3 s
# next to another engineer's XGBoost run). The harness therefore runs every child with passive
# waiting so that the figures measure civicml rather than the neighbours; both sides of every
# comparison get the same setting. `run_all.py --omp-default` turns this off.
SETTINGS = {"omp_passive": True}


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without store overrides (each run uses its own tmp store)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICML_")}
    if SETTINGS["omp_passive"]:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    env.update(extra)
    return env


def bench_config(dest_dir: Path, rows: int, trials: int, base: Path = REPO / "civicml.yaml", **sections: Any) -> Path:
    """Write a copy of the repo's civicml.yaml with `rows`/`trials` set and a store inside `dest_dir`."""
    cfg = yaml.safe_load(base.read_text())
    cfg["data"]["demo"]["rows"] = rows
    cfg["tuning"]["max_trials"] = trials
    cfg["storage"]["uri"] = str(dest_dir / ".civicml")
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value)
    path = dest_dir / "civicml.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# The server benchmarks measure serving, not the gate: under this policy the trained model always deploys.
ALWAYS_DEPLOY = {"min_metrics": {"roc_auc": 0.5}, "fairness": [], "require_approval": "never"}


def train_served_model(dest_dir: Path, train_rows: int) -> Path:
    """`civicml run` (2 trials) on `train_rows` demo rows into a store in `dest_dir`, deployed; return the config."""
    cfg = bench_config(dest_dir, train_rows, 2, policy=ALWAYS_DEPLOY)
    timed_run([CIVICML, "run", "--json", "-c", str(cfg)], cwd=dest_dir)
    return cfg


def timed_run(
    cmd: list[str], cwd: Path | None = None, timeout: float = 3600, env: dict | None = None
) -> tuple[float, str]:
    """Run `cmd` to completion; return (wall seconds, stdout). Raises with stderr's tail on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or clean_env())
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:4])}... exited {proc.returncode}:\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}"
        )
    return seconds, proc.stdout


def last_json(stdout: str) -> Any:
    """The last JSON document printed on stdout (scripts may print progress before it)."""
    text = stdout.strip()
    for start in [i for i, ch in enumerate(text) if ch in "{["]:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            continue
    raise ValueError(f"no JSON found in output: {text[-500:]!r}")


def emit(result: Any, out: Path | None) -> None:
    """A script's result as indented JSON: written to `out`, or printed when there is none."""
    text = json.dumps(result, indent=2, default=str)
    if out:
        out.write_text(text)
    else:
        print(text)


def summary(values: list[float]) -> dict[str, Any]:
    """Median, min, max, IQR and n of a sample."""
    v = sorted(float(x) for x in values)
    if not v:
        return {"n": 0}
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0], v[0], v[0]]
    return {"n": len(v), "median": statistics.median(v), "min": v[0], "max": v[-1], "q1": q[0], "q3": q[2], "values": v}


def fmt(s: dict[str, Any], unit: str = "", digits: int = 2) -> str:
    """`median [min–max] (n=…)` for a summary."""
    if not s.get("n"):
        return "n/a"
    f = f"{{:.{digits}f}}"
    if s["n"] == 1:
        return f"{f.format(s['median'])}{unit} (n=1)"
    return f"{f.format(s['median'])}{unit} [{f.format(s['min'])}–{f.format(s['max'])}] (n={s['n']})"


def verdict(ok: bool | None) -> str:
    """MET / MISSED / n/a."""
    return "n/a" if ok is None else ("MET" if ok else "MISSED")


def load_average() -> list[float]:
    """1/5/15-minute load averages (noise indicator)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, OS, Python, civicml git sha and key library versions."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no", "civicml"],
                cwd=REPO,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        sha, dirty = "unknown", False
    from importlib.metadata import PackageNotFoundError, version

    libs = {}
    for name in (
        "civicml",
        "kfp",
        "xgboost-cpu",
        "xgboost",
        "scikit-learn",
        "optuna",
        "fairlearn",
        "pandas",
        "numpy",
        "pyarrow",
        "fastapi",
        "uvicorn",
        "httpx",
    ):
        try:
            libs[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "civicml_sha": sha + ("-dirty" if dirty else ""),
        "libraries": libs,
    }


def fresh_dir(prefix: str) -> Path:
    """A new temp directory (callers remove it with `shutil.rmtree`)."""
    return Path(tempfile.mkdtemp(prefix=f"civicml-bench-{prefix}-"))


def rmtree(path: Path) -> None:
    """Remove a temp directory, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound and released; the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_records(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """`n` demo records with the model's features only (numbers as floats, as the request schema is strict)."""
    from civicml.data.demo import CATEGORICAL, NUMERIC, generate_benefits

    df = generate_benefits(rows=n, seed=seed)
    return [
        {**{c: float(r[c]) for c in NUMERIC}, **{c: str(r[c]) for c in CATEGORICAL}}
        for r in df.to_dict(orient="records")
    ]


def served_records(store_dir: Path, n: int, seed: int = 11) -> tuple[list[dict[str, Any]], int]:
    """`n` demo records that the champion's request schema accepts, and how many drawn ones it refused.

    Fresh demo rows (another seed than training) now and then fall outside the ranges the data
    contract inferred from the training rows; the server rightly answers those with a 422. A load
    test of the prediction path sends only valid bodies, so that every answer is a prediction.
    """
    from civicml.config import ColumnSpec
    from civicml.modeling.persistence import load_model
    from civicml.serving.schemas import RecordSchema
    from civicml.storage.registry import Registry
    from civicml.storage.store import LocalStore

    reg = Registry(LocalStore(store_dir))
    version = reg.get_alias("champion")
    model = load_model(reg.fetch_prefix(version, "model", Path(tempfile.mkdtemp(prefix="civicml-bench-model-"))))
    contract = [ColumnSpec.model_validate(c) for c in json.loads(reg.read_artifact(version, "data/contract.json"))]
    schema = RecordSchema(model.spec, contract, target=model.spec.target)
    accepted: list[dict[str, Any]] = []
    refused = 0
    for record in demo_records(2 * n, seed=seed):
        if schema.validate([record], ("body", "records"))[1]:
            refused += 1
        elif len(accepted) < n:
            accepted.append(record)
        else:
            break
    if len(accepted) < n:
        raise RuntimeError(f"only {len(accepted)} of {2 * n} demo records pass the served schema")
    return accepted, refused


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    """Poll `url` until it answers 200; raise if the server process exits first or `timeout` passes."""
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server process (kill it if it has not exited 30 s later)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cpu_idle_share(interval: float) -> float:
    """Share of all cores' time spent idle (or in iowait) over `interval` seconds, from /proc/stat."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]

    total0, idle0 = sample()
    time.sleep(interval)
    total1, idle1 = sample()
    return (idle1 - idle0) / max(total1 - total0, 1)


def _dirty_mb() -> float:
    """Page cache waiting to be written back (Dirty + Writeback), MB."""
    kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(("Dirty:", "Writeback:")):
            kb += int(line.split()[1])
    return kb / 1024


def cpu_speed(seconds: float = 0.3) -> float:
    """Million iterations per second of a pure-Python loop: how fast one core is right now.

    Why: this is a shared VM whose cores run at different speeds from hour to hour (the floor
    server's throughput ranged 670-1930 req/s across one day's runs); recording this next to each
    run says which runs were slowed by the machine rather than by the code.
    """
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        n += 1
    return round(n / seconds / 1e6, 2)


def settle(min_idle: float = 0.9, max_dirty_mb: float = 32.0, limit: float = 60.0) -> dict[str, Any]:
    """Flush the page cache and wait until the machine is quiet; return what was waited for.

    Why: a latency phase that starts while the previous phase's gigabyte of files is still being
    written back (or its processes are still exiting) measures the writeback, not the server. The
    wait ends at `limit` regardless: the result says so, and the figures then carry that noise.
    The result also carries `cpu_speed()` measured once the machine is quiet.
    """
    if not Path("/proc/stat").is_file():
        return {"waited_s": 0.0, "settled": None}
    t0 = time.monotonic()
    os.sync()
    idle, dirty = 0.0, _dirty_mb()
    while time.monotonic() - t0 < limit:
        idle, dirty = _cpu_idle_share(1.0), _dirty_mb()
        if idle >= min_idle and dirty <= max_dirty_mb:
            break
    return {
        "waited_s": round(time.monotonic() - t0, 1),
        "settled": idle >= min_idle and dirty <= max_dirty_mb,
        "idle": round(idle, 3),
        "dirty_mb": round(dirty, 1),
        "cpu_mloops_s": cpu_speed(),
    }
