"""Distributed training: wall time, peak RSS per worker and AUC for 1, 2 and 4 workers.

For each size the demo table is streamed to Parquet (`civicml.data.demo.write_benefits`), validated
and split once by `civicml.steps.validate_data` (its training split and feature spec), then for each
N the split is cut with the same `write_shards` the pipeline uses and trained by the same local
launcher (`train_distributed`: N processes on XGBoost's collective over loopback). Peak RSS is each
worker's own VmHWM (read by the worker at the end, so it covers the shard, the DMatrix and the
fit). The single-process train step (`training.workers: 1`, which also loads the valid and test
splits) is measured beside it as a child process.

On 2 shared cores no speed-up is expected; what must show is the per-worker memory falling with N.

Usage:
    python benchmarks/distributed.py [--rows 1000000 10000000] [--workers 1 4 2] [--n-estimators 50]
        [--validate] [--single] [--out benchmarks/distributed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see _common.SETTINGS: measure civicml, not the neighbours

_SINGLE = """
import json, sys
from civicml import steps
from civicml.modeling.distributed import peak_rss_bytes
cfg, data, model = sys.argv[1:4]
steps.train(open(cfg).read(), data, None, model)
print(json.dumps({"peak_rss_bytes": peak_rss_bytes()}))
"""


def _auc(model_dir: Path, test) -> float:
    from sklearn.metrics import roc_auc_score

    from civicml.modeling.persistence import load_model

    model = load_model(model_dir)
    return float(roc_auc_score(model.spec.encode_target(test[model.spec.target]), model.predict_proba(test)))


def _single_process(cfg, data_dir: Path, work: Path) -> dict[str, Any]:
    cfg_path = work / "config-single.json"
    cfg_path.write_text(cfg.to_json())
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _SINGLE, str(cfg_path), str(data_dir), str(work / "model-single")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "CIVICML_STORE_URI": str(work / "store")},
    )
    return {"wall_s": time.perf_counter() - t0, **json.loads(proc.stdout.strip().splitlines()[-1])}


def run_size(rows: int, workers: list[int], n_estimators: int, log, progress, full_validate: bool, single: bool):
    """All measurements for one table size."""
    import pandas as pd

    from civicml import steps
    from civicml.config import load_config
    from civicml.data.demo import CATEGORICAL, NUMERIC, PII, TARGET, write_benefits
    from civicml.data.split import split_frame
    from civicml.modeling.distributed import WorkerJob, train_distributed, write_shards
    from civicml.modeling.estimators import build_params
    from civicml.modeling.preprocessing import FeatureSpec

    with tempfile.TemporaryDirectory(prefix=f"civicml-bench-dist-{rows}-") as tmp:
        work = Path(tmp)
        src = work / "claims.parquet"
        t0 = time.perf_counter()
        write_benefits(src, rows)
        log(f"{rows:>10} rows: demo streamed to Parquet in {time.perf_counter() - t0:.1f}s")
        overrides = {"data.source": str(src), "storage.uri": str(work / "store")}
        cfg = load_config(BENCH.parent / "civicml.yaml", {**overrides, "model.params": {"n_estimators": n_estimators}})
        data_dir = work / "data"
        t0 = time.perf_counter()
        if full_validate:
            info = steps.validate_data(cfg, str(data_dir))
            log(f"{rows:>10} rows: validate-data in {time.perf_counter() - t0:.1f}s ({info['rows']})")
            train = pd.read_parquet(data_dir / "train.parquet")
            test = pd.read_parquet(data_dir / "test.parquet")
            spec = json.loads((data_dir / "feature_spec.json").read_text())
        else:
            # validate-data's own split and feature spec, without its contract inference, profile and
            # fingerprints (many minutes at 10M rows on 2 shared cores, and not what is measured here).
            table = pd.read_parquet(src).drop(columns=PII)
            splits = split_frame(table, TARGET, cfg.split, stratify=True)
            del table
            train, test = splits["train"], splits["test"]
            spec = FeatureSpec.fit(train, TARGET, cfg.task, NUMERIC, CATEGORICAL).to_dict()
            log(f"{rows:>10} rows: split in {time.perf_counter() - t0:.1f}s ({len(train)} training rows)")
        params = build_params("xgboost", cfg.model.params, {})
        out: dict[str, Any] = {"rows": rows, "train_rows": len(train), "n_estimators": n_estimators, "runs": []}
        for n in workers:
            shard_dir = work / f"shards-{n}"
            refs = write_shards(train, shard_dir, n)
            job = WorkerJob(
                spec=spec,
                params=params,
                seed=cfg.model.seed,
                n_threads=cfg.model.n_threads,
                shards=refs,
                timeout_seconds=6 * 3600,
                shard_root=str(shard_dir),
                output="",
            )
            t0 = time.perf_counter()
            reports = train_distributed(job, work / f"model-{n}")
            wall = time.perf_counter() - t0
            rss = [r["peak_rss_bytes"] for r in reports]
            run = {
                "workers": n,
                "wall_s": round(wall, 2),
                "peak_rss_per_worker_mib": [round(b / 2**20, 1) for b in rss],
                "max_peak_rss_mib": round(max(rss) / 2**20, 1),
                "rows_per_worker": [r["rows"] for r in reports],
                "roc_auc_test": round(_auc(work / f"model-{n}", test), 6),
            }
            out["runs"].append(run)
            log(f"{rows:>10} rows, N={n}: {json.dumps(run)}")
            _compare(out)
            out["partial"] = True  # written after every run, so an interrupted benchmark keeps its figures
            progress(out)
        if single and full_validate:
            measured = _single_process(cfg, data_dir, work)
            out["single_process_train_step"] = {
                "wall_s": round(measured["wall_s"], 2),
                "peak_rss_mib": round(measured["peak_rss_bytes"] / 2**20, 1),
                "roc_auc_test": round(_auc(work / "model-single", test), 6),
            }
            log(f"{rows:>10} rows, single-process train step: {json.dumps(out['single_process_train_step'])}")
        out["partial"] = False
    return out


def _compare(out: dict[str, Any]) -> None:
    base = next((r for r in out["runs"] if r["workers"] == 1), None)
    if base:
        for r in out["runs"]:
            r["rss_vs_n1"] = round(r["max_peak_rss_mib"] / base["max_peak_rss_mib"], 3)
            r["auc_minus_n1"] = round(r["roc_auc_test"] - base["roc_auc_test"], 6)


def render(results: list[dict[str, Any]]) -> str:
    """Markdown table of the runs."""
    lines = [
        "| rows | workers | wall s | peak RSS per worker (MiB) | max / N=1 | test ROC AUC | AUC - N=1 |",
        "|---:|---:|---:|---|---:|---:|---:|",
    ]
    for res in results:
        for r in res["runs"]:
            per_worker = ", ".join(map(str, r["peak_rss_per_worker_mib"]))
            lines.append(
                f"| {res['rows']:,} | {r['workers']} | {r['wall_s']} | {per_worker}"
                f" | {r.get('rss_vs_n1', '')} | {r['roc_auc_test']:.4f} | {r.get('auc_minus_n1', 0):+.4f} |"
            )
        s = res.get("single_process_train_step")
        if s:
            lines.append(
                f"| {res['rows']:,} | 1 (train step, in-process) | {s['wall_s']} | {s['peak_rss_mib']} | | "
                f"{s['roc_auc_test']:.4f} | |"
            )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4, 2])
    ap.add_argument("--n-estimators", type=int, default=50, help="trees per model (memory does not depend on it)")
    ap.add_argument("--out", type=Path, default=BENCH / "distributed.json")
    ap.add_argument("--validate", action="store_true", help="split with the whole validate-data step")
    ap.add_argument("--single", action="store_true", help="also the in-process train step (needs --validate)")
    a = ap.parse_args()

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    results: list[dict[str, Any]] = []

    def progress(current: dict[str, Any]) -> None:
        a.out.write_text(json.dumps([*results, current], indent=2))

    for rows in a.rows:
        results.append(run_size(rows, a.workers, a.n_estimators, log, progress, a.validate, a.single))
        a.out.write_text(json.dumps(results, indent=2))
    table = render(results)
    a.out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
