"""The pipeline's goals of issue 18, judged on `run_all.py`'s results, and their section of results.md.

* pipeline / bare script at 1M rows (alternating pairs, `pipeline_overhead.alternate`);
* the evaluate step against the bare script's evaluate stage at 1M rows, per pair;
* peak RSS of every step above the import floor, over the float feature matrix (scaling phase, 1M rows);
* fixed cost per heavy step at 1k rows: step wall (process start-up included) minus the bare stage;
* what each step process imports (scaling children report the heavy libraries they loaded), so a
  step that imports far more than it uses shows up.

`run_all.py` merges `GOALS` and `goals(res)` into its goals table and puts `render(res)` after it.
"""

from __future__ import annotations

from typing import Any

GOALS = {
    "ratio_1m": "pipeline / bare <= 1.10 at 1M rows",
    "evaluate_1m": "evaluate step / bare evaluate <= 1.5 at 1M rows",
    "rss": "peak RSS of every step <= 4x the float feature matrix above the import floor (largest size)",
    "fixed": "fixed cost <= 1.5 s per heavy step at 1k rows (step wall minus the bare stage)",
}
RATIO_LIMIT = 1.10
EVALUATE_LIMIT = 1.5
RSS_LIMIT = 4.0
FIXED_LIMIT = 1.5
HEAVY_STEPS = ("validate-data", "tune", "train", "evaluate")
# What each step needs: anything else it loads is import cost it pays for nothing.
NEEDS = {
    "validate_data": {"pandas", "pyarrow"},
    "tune": {"pandas", "pyarrow", "xgboost", "sklearn", "scipy", "optuna"},
    "train": {"pandas", "pyarrow", "xgboost", "sklearn", "scipy"},
    "evaluate": {"pandas", "pyarrow", "xgboost", "sklearn", "scipy", "fairlearn", "matplotlib", "shap"},
    "gate": set(),
    "register": set(),
    "deploy": set(),
}


def _median(values: list[float]) -> float | None:
    v = sorted(values)
    if not v:
        return None
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def _big(res: dict[str, Any]) -> dict[str, Any] | None:
    big = [r for r in res.get("ratio", []) if r["rows"] >= 1_000_000]
    return big[-1] if big else None


def evaluate_ratios(run: dict[str, Any]) -> list[float]:
    """Per pair: the evaluate step's wall over the bare script's evaluate stage."""
    return [
        p["pipeline"]["steps"]["evaluate"] / p["bare"]["stages"]["evaluate"]
        for p in run["runs"]
        if p["pipeline"]["steps"].get("evaluate") and p["bare"]["stages"].get("evaluate")
    ]


def rss_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Per step at the largest size: peak RSS, above the floor, over the matrix."""
    last = res["scaling"]["runs"][-1]
    floor, matrix = last["baseline"]["maxrss_mb"], last["feature_matrix_mb"]
    return [
        {"step": s, "rss": v["maxrss_mb"], "above": v["maxrss_mb"] - floor, "x": (v["maxrss_mb"] - floor) / matrix}
        for s, v in last["steps"].items()
    ]


def goals(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each goal with its figure and ok (None when not measured)."""
    g: dict[str, dict[str, Any]] = {}
    big = _big(res)
    ratio = big["ratio"] if big else None
    g["ratio_1m"] = {
        "figure": _fmt(ratio) if ratio else "not measured",
        "ok": ratio["median"] <= RATIO_LIMIT if ratio else None,
    }
    ev = evaluate_ratios(big) if big else []
    g["evaluate_1m"] = {
        "figure": f"{_median(ev):.2f} [{min(ev):.2f}–{max(ev):.2f}] (n={len(ev)})" if ev else "not measured",
        "ok": _median(ev) <= EVALUATE_LIMIT if ev else None,
    }
    if res.get("scaling", {}).get("runs"):
        rows = rss_rows(res)
        worst = max(rows, key=lambda r: r["x"])
        last = res["scaling"]["runs"][-1]
        g["rss"] = {
            "figure": f"worst {worst['step']}: {worst['x']:.1f}x ({worst['rss']:.0f} MB, {worst['above']:.0f} MB above "
            f"the {last['baseline']['maxrss_mb']:.0f} MB floor, matrix {last['feature_matrix_mb']:.0f} MB) at "
            f"{last['rows']:,} rows",
            "ok": worst["x"] <= RSS_LIMIT,
        }
    fixed = res.get("fixed", {}).get("per_step", {})
    heavy = {s: v for s, v in fixed.items() if s in HEAVY_STEPS}
    if heavy:
        worst_fixed = max(heavy, key=lambda s: heavy[s]["overhead"])
        g["fixed"] = {
            "figure": f"worst {worst_fixed}: {heavy[worst_fixed]['overhead']:.2f} s "
            f"(step wall {heavy[worst_fixed]['pipeline']:.2f} s)",
            "ok": all(v["overhead"] <= FIXED_LIMIT for v in heavy.values()),
        }
    return g


def _fmt(s: dict[str, Any]) -> str:
    if s.get("n", 0) <= 1:
        return f"{s['median']:.2f} (n={s.get('n', 0)})"
    return f"{s['median']:.2f} [{s['min']:.2f}–{s['max']:.2f}] (n={s['n']})"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]


def render(res: dict[str, Any]) -> list[str]:
    """The pipeline section of results.md (Markdown lines)."""
    out = ["## Pipeline: speed, memory and fixed cost (issue 18)", ""]
    big = _big(res)
    if big:
        out += [
            f"Evaluate step against the bare script's evaluate stage, {big['rows']:,} rows, per alternating pair "
            "(step wall from kfp.local's task log, process start-up included):",
            "",
            *_table(
                ["pair", "evaluate step", "bare evaluate", "ratio"],
                [
                    [
                        i + 1,
                        f"{p['pipeline']['steps']['evaluate']:.1f} s",
                        f"{p['bare']['stages']['evaluate']:.1f} s",
                        f"{p['pipeline']['steps']['evaluate'] / p['bare']['stages']['evaluate']:.2f}",
                    ]
                    for i, p in enumerate(big["runs"])
                ],
            ),
            "",
        ]
    if res.get("scaling", {}).get("runs"):
        last = res["scaling"]["runs"][-1]
        out += [
            f"Peak RSS per step at {last['rows']:,} rows above the import floor "
            f"({last['baseline']['maxrss_mb']:.0f} MB) over the float feature matrix "
            f"({last['feature_matrix_mb']:.1f} MB); goal <= {RSS_LIMIT:g}x:",
            "",
            *_table(
                ["step", "peak RSS", "above floor", "x matrix", f"<= {RSS_LIMIT:g}x"],
                [
                    [
                        r["step"],
                        f"{r['rss']:.0f} MB",
                        f"{r['above']:.0f} MB",
                        f"{r['x']:.1f}",
                        "MET" if r["x"] <= RSS_LIMIT else "MISSED",
                    ]
                    for r in rss_rows(res)
                ],
            ),
            "",
            "What each step process imports (`import civicml.steps` time; heavy libraries loaded by the end of "
            "the step; `not needed` lists what the step loads but does not use):",
            "",
            *_table(
                ["step", "import civicml.steps", "modules", "heavy libraries loaded", "not needed"],
                [
                    [
                        s,
                        f"{v.get('import_seconds', float('nan')):.2f} s",
                        v.get("modules", "?"),
                        ", ".join(v.get("libraries", [])) or "-",
                        ", ".join(sorted(set(v.get("libraries", [])) - NEEDS.get(s, set()) - {"kfp"})) or "-",
                    ]
                    for s, v in last["steps"].items()
                ],
            ),
            "",
        ]
    return out
