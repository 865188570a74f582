"""What the pipeline costs on top of the bare work: whole-process ratio and per-step fixed overhead.

* Ratio: `civicml run` (a subprocess, fresh temp store and directory each time) against
  `bare_baseline.py` (a subprocess too) on the same config, measured alternately
  (A B A B ...) in one session so that machine noise hits both sides alike. Every pair
  is checked to have done the same work: same best trial, same best parameters and the
  same test ROC-AUC (to 1e-9); a mismatch fails the benchmark.
* Fixed overhead: at a tiny size (1k rows, 1 trial) each pipeline step's wall time
  (from kfp.local's task start/finish log lines) minus the bare script's time for the
  same stage; plus the start-up cost of a fresh interpreter importing what a kfp.local
  step imports.

Usage:
    python benchmarks/pipeline_overhead.py [--sizes 100000 1000000] [--pairs 3 2] [--trials 8 2]
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    CIVICML,
    PY,
    bench_config,
    clean_env,
    emit,
    fmt,
    fresh_dir,
    last_json,
    load_average,
    rmtree,
    summary,
    timed_run,
)

STEP_TO_STAGE = {
    "validate-data": "data",
    "tune": "tune",
    "train": "train",
    "evaluate": "evaluate",
    "gate": "gate",
    "register": None,
    "deploy": None,
}
_LINE = re.compile(
    r"(\d\d:\d\d:\d\d\.\d+) - \w+ - (?:Executing task '([\w-]+)'|Task '([\w-]+)' finished with status (\w+))"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def step_seconds(log_path: str | Path) -> dict[str, float]:
    """Per-task wall seconds from a kfp.local run log (task start to task finish)."""
    starts: dict[str, datetime] = {}
    out: dict[str, float] = {}
    for line in _ANSI.sub("", Path(log_path).read_text(errors="replace")).splitlines():
        m = _LINE.search(line)
        if not m:
            continue
        ts = datetime.strptime(m.group(1)[:12], "%H:%M:%S.%f")
        if m.group(2):
            starts[m.group(2)] = ts
        elif m.group(3) in starts:
            out[m.group(3)] = (ts - starts[m.group(3)]).total_seconds() % 86400
    return out


def run_pipeline_once(rows: int, trials: int, host: bool = True) -> dict[str, Any]:
    """`civicml run --json` in a fresh directory with a fresh store; wall time, step times, results.

    `host=False` runs with CIVICML_STEP_HOST=off: every step imports its libraries in its own process,
    as it does in a cluster pod.
    """
    d = fresh_dir("pipe")
    try:
        cfg = bench_config(d, rows, trials)
        env = clean_env() if host else clean_env(CIVICML_STEP_HOST="off")
        wall, out = timed_run([CIVICML, "run", "--json", "-c", str(cfg)], cwd=d, env=env)
        res = last_json(out)
        if not res.get("ok"):
            raise RuntimeError(f"civicml run failed: {res.get('error')}")
        tuning = sorted(d.glob(".civicml/**/tuning.json"))
        tj = json.loads(tuning[0].read_text()) if tuning else {}
        return {
            "wall": wall,
            "steps": step_seconds(res["log"]),
            "in_process_seconds": res.get("seconds"),
            "best_trial": tj.get("best_trial"),
            "best_params": tj.get("best_params"),
            "test_roc_auc": res.get("metrics", {}).get("roc_auc"),
            "decision": res.get("decision"),
        }
    finally:
        rmtree(d)


def run_bare_once(rows: int, trials: int) -> dict[str, Any]:
    """`bare_baseline.py --json` as a subprocess on the same config; wall time, stage times, results."""
    d = fresh_dir("bare")
    try:
        cfg = bench_config(d, rows, trials)
        wall, out = timed_run(
            [
                PY,
                str(BENCH / "bare_baseline.py"),
                "--config",
                str(cfg),
                "--rows",
                str(rows),
                "--trials",
                str(trials),
                "--out",
                str(d / "out"),
                "--json",
            ],
            cwd=d,
        )
        res = last_json(out)
        res["wall"] = wall
        return res
    finally:
        rmtree(d)


def same_work(pipe: dict[str, Any], bare: dict[str, Any]) -> tuple[bool, str]:
    """Both sides picked the same trial and parameters and scored the same test ROC-AUC."""
    problems = []
    if pipe["best_trial"] != bare["best_trial"]:
        problems.append(f"best trial {pipe['best_trial']} vs {bare['best_trial']}")
    if pipe["best_params"] != bare["best_params"]:
        problems.append(f"best params {pipe['best_params']} vs {bare['best_params']}")
    if pipe["test_roc_auc"] is None or abs(pipe["test_roc_auc"] - bare["test_roc_auc"]) > 1e-9:
        problems.append(f"test roc_auc {pipe['test_roc_auc']} vs {bare['test_roc_auc']}")
    return not problems, "; ".join(problems) or "same best trial, parameters and test ROC-AUC"


def alternate(rows: int, trials: int, pairs: int, log=print) -> dict[str, Any]:
    """Measure pipeline (A) and bare (B) alternately, `pairs` times; return walls, ratios, checks."""
    runs = []
    for i in range(pairs):
        load = load_average()
        a = run_pipeline_once(rows, trials)
        b = run_bare_once(rows, trials)
        ok, detail = same_work(a, b)
        runs.append(
            {
                "pipeline": a,
                "bare": b,
                "ratio": a["wall"] / b["wall"],
                "same_work": ok,
                "check": detail,
                "load_before": load,
            }
        )
        log(
            f"  overhead {rows:>9,} rows pair {i + 1}/{pairs}: pipeline {a['wall']:.1f} s, bare {b['wall']:.1f} s, "
            f"ratio {a['wall'] / b['wall']:.2f}, same work: {ok}"
        )
        if not ok:
            raise RuntimeError(f"pipeline and bare baseline did different work at {rows} rows: {detail}")
    return summarise_pairs(rows, trials, runs)


def summarise_pairs(rows: int, trials: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Walls, ratios and per-step times of measured pairs, each as a summary, with the pairs themselves."""
    steps = sorted({s for r in runs for s in r["pipeline"]["steps"]}, key=list(STEP_TO_STAGE).index)
    return {
        "rows": rows,
        "trials": trials,
        "pairs": len(runs),
        "pipeline_wall": summary([r["pipeline"]["wall"] for r in runs]),
        "bare_wall": summary([r["bare"]["wall"] for r in runs]),
        "ratio": summary([r["ratio"] for r in runs]),
        "pipeline_steps": {s: summary([r["pipeline"]["steps"].get(s, 0.0) for r in runs]) for s in steps},
        "bare_stages": {s: summary([r["bare"]["stages"][s] for r in runs]) for s in runs[0]["bare"]["stages"]},
        "same_work": all(r["same_work"] for r in runs),
        "runs": runs,
    }


def startup_costs(reps: int = 3) -> dict[str, Any]:
    """Wall seconds of fresh interpreters importing what a kfp.local step process imports.

    kfp's lightweight-component command sets `_KFP_RUNTIME=true` (kfp/dsl/component_factory.py), which
    keeps `import kfp` from loading the client; the probes run with it too.
    """
    probes = {
        "python -c pass": "pass",
        "kfp executor + civicml.steps.host (a step with the warm host)": (
            "import kfp.dsl.executor_main, civicml.steps.host"
        ),
        "+ the steps' libraries (a step in its own process)": (
            "import kfp.dsl.executor_main, civicml.steps.training, pyarrow.parquet, xgboost, sklearn.metrics"
        ),
    }
    env = clean_env(_KFP_RUNTIME="true")
    out = {}
    for name, code in probes.items():
        out[name] = summary([timed_run([PY, "-c", code], env=env)[0] for _ in range(reps)])
    return out


def own_process_steps(reps: int, rows: int, trials: int, log=print) -> dict[str, Any]:
    """Per-step walls with CIVICML_STEP_HOST=off (each step imports its own libraries, as in a pod)."""
    runs = []
    for i in range(reps):
        runs.append(run_pipeline_once(rows, trials, host=False)["steps"])
        log(f"  own-process steps {i + 1}/{reps}: " + ", ".join(f"{k} {v:.2f} s" for k, v in runs[-1].items()))
    return {s: summary([r[s] for r in runs if s in r]) for s in runs[0]}


def fixed_overhead(reps: int = 3, rows: int = 1000, trials: int = 1, log=print) -> dict[str, Any]:
    """Per-step pipeline time minus the bare time of the same stage, at a tiny size."""
    res = alternate(rows, trials, reps, log=log)
    per_step = {}
    for step, stage in STEP_TO_STAGE.items():
        if step not in res["pipeline_steps"]:
            continue
        # The step's fixed cost in each pair (its wall minus the bare stage's); the median of those is the figure.
        per_pair = [
            r["pipeline"]["steps"][step] - (r["bare"]["stages"][stage] if stage else 0.0)
            for r in res["runs"]
            if step in r["pipeline"]["steps"]
        ]
        per_step[step] = {
            "pipeline": res["pipeline_steps"][step]["median"],
            "bare": res["bare_stages"][stage]["median"] if stage else 0.0,
            "overhead": summary(per_pair)["median"],
            "overhead_per_pair": per_pair,
            "bare_stage": stage,
        }
    return {
        "rows": rows,
        "trials": trials,
        "reps": reps,
        "per_step": per_step,
        "bare_imports": res["bare_stages"]["imports"],
        "detail": res,
        "startup": startup_costs(),
        "own_process": own_process_steps(reps, rows, trials, log=log),
    }


def main() -> None:
    """Command line: run the overhead measurements and print JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--pairs", type=int, nargs="+", default=[3, 2])
    ap.add_argument("--trials", type=int, nargs="+", default=[8, 2])
    ap.add_argument("--fixed-reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    result = {
        "fixed": fixed_overhead(a.fixed_reps),
        "ratio": [alternate(n, t, p) for n, p, t in zip(a.sizes, a.pairs, a.trials)],
    }
    for r in result["ratio"]:
        print(f"{r['rows']:,} rows: ratio {fmt(r['ratio'])}")
    emit(result, a.out)


if __name__ == "__main__":
    main()
