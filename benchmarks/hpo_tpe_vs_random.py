"""TPE vs random search at equal budget, and the compute median pruning saves.

For each seed the same demo data is searched three ways with civicml's Optuna backend
(the local twin of the Katib backend, same algorithm names):

* ``tpe`` and ``random`` without early stopping, `--trials` trials each;
* ``tpe`` with ``medianstop`` (MedianPruner) using the early-stopping settings of the config.

Figures (per seed, then summarised):

* trials needed to come within 0.5% of the best validation AUC found by any
  unpruned search on that seed (lower is better; `--trials + 1` = never);
* best AUC each search reached;
* boosting rounds run with pruning as a fraction of those run without it
  (``rounds_run / rounds_full``, where ``rounds_full`` is what the same trials would
  have run unpruned), and the best AUC the pruned search still reached.

Usage::

    .venv/bin/python benchmarks/hpo_tpe_vs_random.py [--seeds 5] [--trials 20] [--rows 20000]

Writes ``benchmarks/out/hpo_tpe_vs_random.json``. Run on an idle machine: it is CPU bound.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from civicml.config import load_config
from civicml.data.contract import feature_lists, infer_contract
from civicml.data.demo import generate_benefits
from civicml.data.split import split_frame
from civicml.modeling.preprocessing import FeatureSpec
from civicml.tuning.optuna_backend import run_optuna

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out" / "hpo_tpe_vs_random.json"
WITHIN = 0.005


def trials_to_reach(values: list[float | None], target: float) -> int | None:
    """1-based index of the first trial whose running best reaches `target`, else None."""
    best = float("-inf")
    for i, value in enumerate(values, start=1):
        if value is not None:
            best = max(best, value)
        if best >= target:
            return i
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--config", type=Path, default=REPO / "civicml.yaml")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    base = load_config(args.config)
    df = generate_benefits(rows=args.rows, month=1, bias=0.0, seed=base.data.demo.seed)
    df = df.drop(columns=[c for c in base.data.pii_columns if c in df.columns])
    numeric, categorical = feature_lists(infer_contract(df, base.data), base.data)
    splits = split_frame(df, base.data.target, base.split, stratify=True)
    spec = FeatureSpec.fit(splits["train"], base.data.target, base.task, numeric, categorical)
    es = base.tuning.early_stopping.model_dump() if base.tuning.early_stopping else {"algorithm": "medianstop"}

    def search(algorithm: str, seed: int, prune: bool) -> dict:
        tuning = base.tuning.model_dump(mode="json")
        tuning.update(algorithm=algorithm, seed=seed, max_trials=args.trials, early_stopping=es if prune else None)
        cfg = load_config(args.config, {"tuning": tuning})
        t0 = time.perf_counter()
        result = run_optuna(cfg, spec, splits["train"], splits["valid"])
        result["seconds"] = time.perf_counter() - t0
        return result

    per_seed = []
    started = time.perf_counter()
    for seed in range(args.seeds):
        runs = {
            "tpe": search("tpe", seed, prune=False),
            "random": search("random", seed, prune=False),
            "tpe+medianstop": search("tpe", seed, prune=True),
        }
        values = {k: [t["value"] if t["state"] == "COMPLETE" else None for t in r["trials"]] for k, r in runs.items()}
        best = max(v for k in ("tpe", "random") for v in values[k] if v is not None)
        target = best * (1 - WITHIN)
        row = {"seed": seed, "best_auc_found": best}
        for name, run in runs.items():
            needed = trials_to_reach(values[name], target)
            row[name] = {
                "best_auc": run["best_value"],
                "trials_to_within_0.5pct": needed,
                "rounds_run": run["rounds_run"],
                "rounds_full": run["rounds_full"],
                "pruned_trials": run["pruned"],
                "seconds": round(run["seconds"], 2),
            }
        row["pruning_rounds_fraction_vs_unpruned_tpe"] = (
            runs["tpe+medianstop"]["rounds_run"] / runs["tpe"]["rounds_run"]
        )
        per_seed.append(row)
        print(
            f"seed {seed}: best {best:.4f} | trials to within 0.5%: tpe {row['tpe']['trials_to_within_0.5pct']}, "
            f"random {row['random']['trials_to_within_0.5pct']} | pruning ran "
            f"{row['pruning_rounds_fraction_vs_unpruned_tpe']:.0%} of the rounds "
            f"(best {row['tpe+medianstop']['best_auc']:.4f} vs {row['tpe']['best_auc']:.4f})",
            flush=True,
        )

    never = args.trials + 1

    def needed(name: str) -> list[int]:
        return [r[name]["trials_to_within_0.5pct"] or never for r in per_seed]

    summary = {
        "rows": args.rows,
        "trials_per_search": args.trials,
        "seeds": args.seeds,
        "n_estimators": int(base.model.params.get("n_estimators", 0)) or None,
        "early_stopping": es,
        "tpe_trials_to_within_0.5pct": {
            "mean": statistics.mean(needed("tpe")),
            "median": statistics.median(needed("tpe")),
        },
        "random_trials_to_within_0.5pct": {
            "mean": statistics.mean(needed("random")),
            "median": statistics.median(needed("random")),
        },
        "tpe_best_auc_mean": statistics.mean(r["tpe"]["best_auc"] for r in per_seed),
        "random_best_auc_mean": statistics.mean(r["random"]["best_auc"] for r in per_seed),
        "tpe_wins_or_ties": sum(r["tpe"]["best_auc"] >= r["random"]["best_auc"] for r in per_seed),
        "pruning_rounds_fraction_mean": statistics.mean(r["pruning_rounds_fraction_vs_unpruned_tpe"] for r in per_seed),
        "pruned_tpe_best_auc_mean": statistics.mean(r["tpe+medianstop"]["best_auc"] for r in per_seed),
        "pruned_trials_mean": statistics.mean(r["tpe+medianstop"]["pruned_trials"] for r in per_seed),
        "seconds_total": round(time.perf_counter() - started, 1),
        "note": f"'never' within 0.5% is counted as {never}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "per_seed": per_seed}, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
