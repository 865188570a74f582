"""How each pipeline step scales with rows: wall time and peak RSS, each step in its own process.

A small driver runs every step function of `civicml.steps` (validate_data, tune, train,
evaluate, gate, register, deploy) in a fresh Python process, in pipeline order, on a
fresh store, at each size. The child reports the step's own seconds (after imports)
and its peak resident set size (`resource.getrusage(RUSAGE_SELF).ru_maxrss`: stdlib,
one process per step so the peak is the step's). Two extra children measure

* `baseline`: the peak RSS of a process that only imports what the steps import (the
  floor every step pays), and
* `matrix`: the in-memory size of the model's feature matrix for all rows (float64
  numerics + pandas categoricals, as `FeatureSpec.transform` builds it), the yardstick
  of the RSS goal.

The slope of log(time) against log(rows) is fitted per step and for the sum.

Usage:
    python benchmarks/scaling.py [--sizes 10000 100000 1000000] [--trials 2]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any

STEPS = ["validate_data", "tune", "train", "evaluate", "gate", "register", "deploy"]
# Libraries whose import costs a step process noticeable time or memory; each child reports which it loaded.
HEAVY_LIBRARIES = (
    "pandas",
    "pyarrow",
    "sklearn",
    "scipy",
    "xgboost",
    "fairlearn",
    "optuna",
    "matplotlib",
    "shap",
    "kfp",
    "kubernetes",
)


def loaded_libraries() -> list[str]:
    """The heavy libraries this process has imported so far."""
    return [lib for lib in HEAVY_LIBRARIES if lib in sys.modules]


# ----------------------------------------------------------------------------- child side


def _child(step: str, config: str, work: str) -> dict[str, Any]:
    """Run one step (or a probe) in this process; return seconds, peak RSS and what it imported."""
    t_import = time.perf_counter()
    import civicml.steps as steps
    from civicml.config import load_config

    import_seconds = time.perf_counter() - t_import

    w = Path(work)
    cfg = load_config(config)
    paths = {
        "data": str(w / "data"),
        "params": str(w / "params.json"),
        "model": str(w / "model"),
        "eval": str(w / "evaluation.json"),
        "report": str(w / "report.html"),
        "gate": str(w / "gate.json"),
    }
    extra: dict[str, Any] = {}
    t0 = time.perf_counter()
    if step == "baseline":
        import pyarrow.parquet  # noqa: F401  (what the steps import)
        import sklearn.metrics  # noqa: F401
        import xgboost  # noqa: F401
    elif step == "matrix":
        from civicml.data.demo import generate_benefits
        from civicml.modeling.preprocessing import FeatureSpec

        d = cfg.data.demo
        df = generate_benefits(rows=d.rows, month=d.month, bias=d.bias, seed=d.seed)
        num = [c for c in df.columns if c != cfg.data.target and df[c].dtype.kind in "fiu"]
        cat = [
            c
            for c in df.columns
            if c not in num and c not in (cfg.data.target, *cfg.data.sensitive_attributes, *cfg.data.pii_columns)
        ]
        X = FeatureSpec.fit(df, cfg.data.target, cfg.task, num, cat).transform(df)
        extra = {
            "feature_matrix_bytes": int(X.memory_usage(deep=True).sum()),
            "raw_table_bytes": int(df.memory_usage(deep=True).sum()),
            "n_features": X.shape[1],
        }
    elif step == "validate_data":
        extra = {"rows": steps.validate_data(cfg, paths["data"])["rows"]}
    elif step == "tune":
        steps.tune(cfg, paths["data"], paths["params"])
    elif step == "train":
        steps.train(cfg, paths["data"], paths["params"], paths["model"])
    elif step == "evaluate":
        steps.evaluate(cfg, paths["data"], paths["model"], paths["eval"], paths["report"])
    elif step == "gate":
        extra = {"decision": steps.gate(cfg, paths["eval"], paths["gate"])["decision"]}
    elif step == "register":
        steps.register(
            cfg, paths["data"], paths["params"], paths["model"], paths["eval"], paths["gate"], paths["report"]
        )
    elif step == "deploy":
        if json.loads(Path(paths["gate"]).read_text())["decision"] == "deploy":
            steps.deploy(cfg, steps.data_info(paths["data"])["version"])
        else:
            extra = {"skipped": "gate decision was not deploy"}
    else:
        raise SystemExit(f"unknown step {step!r}; expected one of {['baseline', 'matrix', *STEPS]}")
    seconds = time.perf_counter() - t0
    # ru_maxrss is in KiB on Linux.
    return {
        "step": step,
        "seconds": seconds,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "import_seconds": import_seconds,  # `import civicml.steps` (the rest is imported inside the step)
        "libraries": loaded_libraries(),
        "modules": len(sys.modules),
        **extra,
    }


# ----------------------------------------------------------------------------- parent side


def slope(rows: list[int], seconds: list[float]) -> float | None:
    """Least-squares slope of log(seconds) on log(rows); 1.0 means linear."""
    pts = [(math.log(r), math.log(s)) for r, s in zip(rows, seconds) if s > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else None


def measure(rows: int, trials: int, log=print) -> dict[str, Any]:
    """Run every step at `rows` in its own process; per-step seconds, wall and peak RSS."""
    from _common import PY, bench_config, fresh_dir, last_json, rmtree, timed_run

    d = fresh_dir(f"scale{rows}")
    try:
        cfg = bench_config(d, rows, trials)
        work = d / "work"
        work.mkdir()
        out: dict[str, Any] = {"rows": rows, "trials": trials, "steps": {}}
        for step in ["baseline", "matrix", *STEPS]:
            wall, stdout = timed_run([PY, __file__, "--child", step, "--config", str(cfg), "--work", str(work)], cwd=d)
            res = last_json(stdout)
            res["wall"] = wall
            if step in ("baseline", "matrix"):
                out[step] = res
            else:
                out["steps"][step] = res
        out["step_seconds_total"] = sum(s["seconds"] for s in out["steps"].values())
        out["wall_total"] = sum(s["wall"] for s in out["steps"].values())
        out["peak_rss_mb"] = max(s["maxrss_mb"] for s in out["steps"].values())
        out["peak_step"] = max(out["steps"], key=lambda s: out["steps"][s]["maxrss_mb"])
        mat_mb = out["matrix"]["feature_matrix_bytes"] / 2**20
        out["feature_matrix_mb"] = mat_mb
        out["rss_over_matrix"] = out["peak_rss_mb"] / mat_mb
        out["rss_above_baseline_over_matrix"] = (out["peak_rss_mb"] - out["baseline"]["maxrss_mb"]) / mat_mb
        log(
            f"  scaling {rows:>9,} rows: steps {out['step_seconds_total']:.1f} s (wall {out['wall_total']:.1f} s), "
            f"peak RSS {out['peak_rss_mb']:.0f} MB in {out['peak_step']}, feature matrix {mat_mb:.1f} MB"
        )
        return out
    finally:
        rmtree(d)


def scaling(sizes: list[int], trials: int, log=print) -> dict[str, Any]:
    """Measure every size and fit the log-log slopes."""
    runs = [measure(n, trials, log=log) for n in sizes]
    rows = [r["rows"] for r in runs]
    slopes = {s: slope(rows, [r["steps"][s]["seconds"] for r in runs]) for s in STEPS}
    slopes["total"] = slope(rows, [r["step_seconds_total"] for r in runs])
    # The slope between the two largest sizes, where fixed costs no longer dominate.
    top = runs[-2:] if len(runs) >= 2 else runs
    slopes_top = {s: slope([r["rows"] for r in top], [r["steps"][s]["seconds"] for r in top]) for s in STEPS}
    slopes_top["total"] = slope([r["rows"] for r in top], [r["step_seconds_total"] for r in top])
    return {"trials": trials, "sizes": sizes, "runs": runs, "slope_all": slopes, "slope_top": slopes_top}


def main() -> None:
    """Command line: parent (measure sizes) or `--child STEP` (run one step)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--config", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--work", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a.child, a.config, a.work)))
        return
    res = scaling(a.sizes, a.trials, log=lambda m: print(m, file=sys.stderr))
    from _common import emit  # the parent's only: a child imports nothing it does not measure

    emit(res, a.out)


if __name__ == "__main__":
    main()
