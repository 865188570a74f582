"""Server comparison (issue 18 item 5): `civicml serve` against a bare FastAPI + `inplace_predict` floor.

One model is trained with `civicml run` into a temp store (policy relaxed so that it deploys: this
measures serving, not the gate). Then, alternately (civicml, floor, civicml, floor, ...), each
server is started fresh as its own process on loopback and measured by the same load generator,
`benchmarks/loadgen.py`, in a third process:

* throughput: closed loop, 8 connections, single-row `/predict` bodies;
* latency: open loop at 200 requests/s, single row, p99 from each request's scheduled send time.

The floor (`benchmarks/bare_server.py`) loads the same model files and answers the same body; it
validates nothing, logs nothing and routes nothing. civicml, as shipped, acknowledges a prediction
only once its log record is in the store (fsync'd), so its figure includes that durability.

Usage:
    python benchmarks/server_compare.py [--pairs 3] [--seconds 10] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    CIVICML,
    PY,
    clean_env,
    free_port,
    fresh_dir,
    load_average,
    rmtree,
    served_records,
    settle,
    stop,
    train_served_model,
    wait_ready,
)

CONNECTIONS = 8
RATE = 200.0
GOALS = {
    "server_throughput": "server throughput >= 50% of the bare floor's at 8 connections (single row)",
    "p99": "server p99 <= 10 ms for single rows at 200 requests/s (open loop)",
}


def _start(kind: str, cfg: Path, model_dir: Path, cwd: Path, port: int) -> subprocess.Popen:
    if kind == "civicml":
        cmd = [CIVICML, "serve", "--host", "127.0.0.1", "--port", str(port), "-c", str(cfg)]
        ready = "/v2/health/ready"
    else:
        cmd = [PY, str(BENCH / "bare_server.py"), str(model_dir), "--port", str(port)]
        ready = "/openapi.json"
    proc = subprocess.Popen(cmd, cwd=cwd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_ready(f"http://127.0.0.1:{port}{ready}", proc)
    return proc


def _load(url: str, bodies: Path, seconds: float, *mode: str) -> dict[str, Any]:
    cmd = [PY, str(BENCH / "loadgen.py"), "--url", url, "--body-file", str(bodies), "--seconds", str(seconds), *mode]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, env=clean_env(), check=False)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(kind: str, cfg: Path, model_dir: Path, cwd: Path, bodies: Path, seconds: float) -> dict[str, Any]:
    """One run of one server: wait for a quiet machine, start it, warm it, closed loop, open loop, stop it."""
    quiet = settle()
    port = free_port()
    url = f"http://127.0.0.1:{port}/predict"
    proc = _start(kind, cfg, model_dir, cwd, port)
    try:
        _load(url, bodies, 2, "closed", "--connections", "2", "--requests", "300")  # warm-up
        closed = _load(url, bodies, seconds, "closed", "--connections", str(CONNECTIONS))
        opened = _load(url, bodies, seconds, "open", "--rate", str(RATE))
    finally:
        stop(proc)
    return {"closed": closed, "open": opened, "settle": quiet}


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def compare(pairs: int = 3, seconds: float = 10.0, train_rows: int = 20_000, log=print) -> dict[str, Any]:
    """Train once, then `pairs` alternating (civicml, floor) runs; figures with medians and spreads."""
    from civicml.storage.registry import Registry
    from civicml.storage.store import LocalStore

    d = fresh_dir("serve-compare")
    try:
        cfg = train_served_model(d, train_rows)
        reg = Registry(LocalStore(d / ".civicml"))
        version = reg.get_alias("champion")
        model_dir = reg.fetch_prefix(version, "model", d / "model")
        bodies = d / "bodies.jsonl"
        records, refused = served_records(d / ".civicml", 2000)
        bodies.write_text("\n".join(json.dumps({"records": [r]}) for r in records) + "\n")
        runs: dict[str, list[dict[str, Any]]] = {"civicml": [], "floor": []}
        load_start = load_average()
        for i in range(pairs):
            for kind in ("civicml", "floor"):
                log(f"  server comparison pair {i + 1}/{pairs}: {kind}")
                runs[kind].append(measure(kind, cfg, model_dir, d, bodies, seconds))
        settings = {
            "pairs": pairs,
            "seconds": seconds,
            "train_rows": train_rows,
            "version": version,
            "bodies_refused_by_schema": refused,
        }
        return summarise(runs, {**settings, "load_start": load_start, "load_end": load_average()})
    finally:
        rmtree(d)


def summarise(runs: dict[str, list[dict[str, Any]]], settings: dict[str, Any]) -> dict[str, Any]:
    """Per-server medians/spreads, the per-pair throughput ratio, and the raw runs."""
    out: dict[str, Any] = {"settings": settings, "runs": runs}
    for kind, rs in runs.items():
        out[kind] = {
            "throughput_rps": _spread([r["closed"]["throughput_rps"] for r in rs]),
            "closed_p99_ms": _spread([r["closed"]["p99_ms"] for r in rs]),
            "open_p50_ms": _spread([r["open"]["p50_ms"] for r in rs]),
            "open_p99_ms": _spread([r["open"]["p99_ms"] for r in rs]),
            "errors": sum(r["closed"]["errors"] + r["open"]["errors"] for r in rs),
            "unfinished": sum(r["open"].get("unfinished", 0) for r in rs),
        }
    ratios = [
        c["closed"]["throughput_rps"] / f["closed"]["throughput_rps"] for c, f in zip(runs["civicml"], runs["floor"])
    ]
    out["throughput_ratio"] = _spread(ratios)
    return out


def _fmt(s: dict[str, float], unit: str = "", digits: int = 0) -> str:
    return f"{s['median']:.{digits}f}{unit} [{s['min']:.{digits}f}–{s['max']:.{digits}f}] (n={s['n']})"


def _settle_line(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """How long the runs waited for a quiet machine (`_common.settle`), if they did."""
    waits = [r["settle"] for rs in runs.values() for r in rs if "settle" in r]
    if not waits:
        return []
    loud = sum(1 for w in waits if w.get("settled") is False)
    return [
        f"Before each server run the harness flushed the page cache and waited for >= 90% idle cores and <= 32 MB "
        f"of dirty pages: {max(w['waited_s'] for w in waits):.0f} s at most; {loud} of {len(waits)} runs started "
        "without reaching that (after 60 s). Core speed then (`_common.cpu_speed`, M loop iterations/s): "
        + ", ".join(f"{k} {'/'.join(str(r['settle'].get('cpu_mloops_s', '?')) for r in rs)}" for k, rs in runs.items())
        + ".",
        "",
    ]


def goals(res: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The two server goals with their figures and verdicts (None: not measured)."""
    if not res or "error" in res:
        why = (res or {}).get("error", "not measured")
        return {k: {"figure": f"not measured: {why[-200:]}", "ok": None} for k in GOALS}
    c = res["civicml"]
    return {
        "server_throughput": {
            "figure": f"civicml/floor {_fmt(res['throughput_ratio'], digits=4)}; civicml "
            f"{_fmt(c['throughput_rps'], ' req/s')}, floor {_fmt(res['floor']['throughput_rps'], ' req/s')}",
            "ok": res["throughput_ratio"]["median"] >= 0.5,
        },
        "p99": {
            "figure": f"p99 {_fmt(c['open_p99_ms'], ' ms', 1)}, p50 {_fmt(c['open_p50_ms'], ' ms', 1)}; "
            f"errors {c['errors']}, unfinished {c['unfinished']}",
            "ok": c["open_p99_ms"]["median"] <= 10 and c["errors"] == 0 and c["unfinished"] == 0,
        },
    }


def render(res: dict[str, Any] | None) -> list[str]:
    """The results.md section (markdown lines)."""
    out = ["## 3. Model server: civicml vs a bare FastAPI + inplace_predict floor", ""]
    if not res or "error" in res:
        return [*out, f"Not measured: {(res or {}).get('error', 'skipped')}", ""]
    st = res["settings"]
    out += [
        f"`benchmarks/server_compare.py`: model trained on {st['train_rows']:,} demo rows (version {st['version']}); "
        f"{st['pairs']} alternating pairs (civicml, floor, civicml, ...), each server started fresh as its own process "
        f"on 127.0.0.1 and driven by `benchmarks/loadgen.py` in a third process, {st['seconds']:g} s per phase. "
        "Figures: median [min–max] (n = runs). civicml acknowledges each prediction only after its log record is "
        "fsync'd in the store (the default); the floor logs nothing. Both share the 2 cores with the load generator "
        "(and with any other work on the machine). Load average (1/5/15 min) "
        f"{st.get('load_start')} at the start, {st.get('load_end')} at the end.",
        "",
        "| server | req/s at 8 connections | p99 at 8 connections | p50 at 200 req/s | p99 at 200 req/s | errors |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("civicml", "floor"):
        r = res[kind]
        out.append(
            f"| {kind} | {_fmt(r['throughput_rps'])} | {_fmt(r['closed_p99_ms'], ' ms', 1)} | "
            f"{_fmt(r['open_p50_ms'], ' ms', 1)} | {_fmt(r['open_p99_ms'], ' ms', 1)} | {r['errors']} |"
        )
    out += ["", f"Throughput ratio civicml / floor, per pair: {_fmt(res['throughput_ratio'], digits=2)}.", ""]
    out += _settle_line(res["runs"])
    for key, g in goals(res).items():
        verdict = "MET" if g["ok"] else ("MISSED" if g["ok"] is False else "not measured")
        out.append(f"- {GOALS[key]}: {g['figure']} — **{verdict}**")
    return [*out, ""]


SECTION = "## 3. Model server"
OLD_P99_GOAL = "server p99 <= 10 ms for single rows at 200 requests/s"


def splice(md: str, res: dict[str, Any], command: str) -> str:
    """`results.md` with this comparison's section and goal rows replaced (the rest left as it is)."""
    lines = md.splitlines()
    section = [*render(res)]
    section.insert(2, f"Measured by `{command}` on {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}.")
    section.insert(3, "")
    start = next((i for i, ln in enumerate(lines) if ln.startswith(SECTION)), None)
    if start is None:
        lines += ["", *section]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section
    rows = {GOALS[k]: g for k, g in goals(res).items()}
    keep = [ln for ln in lines if not any(ln.startswith(f"| {t} |") for t in [*GOALS.values(), OLD_P99_GOAL])]
    table_end = next((i for i, ln in enumerate(keep) if ln.startswith("| goal | figure | verdict")), None)
    if table_end is not None:
        while table_end < len(keep) and keep[table_end].startswith("|"):
            table_end += 1
        verdict = {True: "MET", False: "**MISSED**", None: "not measured"}
        keep[table_end:table_end] = [f"| {t} | {g['figure']} | {verdict[g['ok']]} |" for t, g in rows.items()]
    return "\n".join(keep) + "\n"


def main() -> None:
    """Command line: run the comparison, print the markdown section; `--write` updates results.md/.json."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--train-rows", type=int, default=20_000)
    ap.add_argument("--out", type=Path, default=None, help="write the raw JSON here")
    ap.add_argument("--write", action="store_true", help="update this section of benchmarks/results.md (and .json)")
    a = ap.parse_args()
    res = compare(a.pairs, a.seconds, a.train_rows, log=lambda m: print(m, file=sys.stderr))
    if a.out:
        a.out.write_text(json.dumps(res, indent=2))
    if a.write:
        command = " ".join(["python benchmarks/server_compare.py", *sys.argv[1:]])
        md = BENCH / "results.md"
        md.write_text(splice(md.read_text() if md.is_file() else "", res, command))
        js = BENCH / "results.json"
        doc = json.loads(js.read_text()) if js.is_file() else {}
        doc["server_compare"] = res
        js.write_text(json.dumps(doc, indent=2, default=str))
    print("\n".join(render(res)))


if __name__ == "__main__":
    main()
