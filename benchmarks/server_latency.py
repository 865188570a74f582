"""Model server latency and throughput on loopback, with a bounded load generator.

A model is trained with `civicml run` into a temp store (policy relaxed so that it is
always deployed: this measures serving, not the gate), then `civicml serve` is started
as a subprocess on 127.0.0.1 on a free port. Every phase is bounded both in request
count and in duration, and all traffic is loopback only:

* `single_open_200rps`: open loop, single-row `/predict` at a fixed 200 requests/s.
  Latency is measured from each request's *scheduled* send time, so a stalled server
  cannot hide its queueing (no coordinated omission). This is the p99 goal's figure.
  Requests still unanswered `DRAIN_SECONDS` after the last send are cancelled and
  counted (`unfinished_at_cutoff`) with their latency so far, a lower bound.
* `single_closed`: closed loop, `--concurrency` workers sending single-row `/predict`
  back to back: the maximum throughput.
* `batch{N}_closed`: the same with N rows per request (rows/s and request latency).
* `v2_single_closed`: single-row Open Inference Protocol `/v2/models/{name}/infer`.

The load generator (httpx, asyncio) runs on the same 2 cores as the server, so the
figures are a floor on what the server does when it has the machine to itself.

Usage:
    python benchmarks/server_latency.py [--requests 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import CIVICML, bench_config, clean_env, fresh_dir, rmtree, timed_run

MAX_IN_FLIGHT = 256
DRAIN_SECONDS = 15.0


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound and released; the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_records(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """`n` demo records with the model's features only (numbers as floats, as the schema is strict)."""
    from civicml.data.demo import CATEGORICAL, NUMERIC, generate_benefits

    df = generate_benefits(rows=n, seed=seed)
    return [
        {**{c: float(r[c]) for c in NUMERIC}, **{c: str(r[c]) for c in CATEGORICAL}}
        for r in df.to_dict(orient="records")
    ]


def v2_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    """An OIP v2 infer body: one tensor per feature column."""
    from civicml.data.demo import NUMERIC

    return {
        "inputs": [
            {
                "name": c,
                "shape": [len(records)],
                "datatype": "FP64" if c in NUMERIC else "BYTES",
                "data": [r[c] for r in records],
            }
            for c in records[0]
        ]
    }


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))] if v else float("nan")


def _stats(lat: list[float], errors: int, elapsed: float, rows_per_request: int, **extra: Any) -> dict[str, Any]:
    ms = [x * 1000 for x in lat]
    return {
        "requests": len(lat),
        "errors": errors,
        "seconds": elapsed,
        "throughput_rps": len(lat) / elapsed if elapsed else 0.0,
        "rows_per_s": len(lat) * rows_per_request / elapsed if elapsed else 0.0,
        "p50_ms": _pct(ms, 50),
        "p90_ms": _pct(ms, 90),
        "p99_ms": _pct(ms, 99),
        "max_ms": max(ms, default=0.0),
        "rows_per_request": rows_per_request,
        **extra,
    }


async def open_loop(client, url: str, bodies: list[dict], rate: float, max_requests: int, max_seconds: float):
    """Send at a fixed `rate` regardless of responses; latency from each scheduled send time."""
    lat: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(MAX_IN_FLIGHT)
    n = min(max_requests, int(rate * max_seconds))

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        async with sem:
            try:
                r = await client.post(url, json=bodies[i % len(bodies)])
                ok = r.status_code == 200
            except Exception:  # noqa: BLE001 - any transport failure counts as an error, the run goes on
                ok = False
        if ok:
            lat.append(time.perf_counter() - scheduled)
        else:
            errors += 1

    t0 = time.perf_counter()
    tasks = {}
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks[asyncio.create_task(one(i, scheduled))] = scheduled
    # A server slower than `rate` builds a queue; give it a bounded time to drain, then count
    # what is left at its latency so far (a lower bound) rather than waiting without limit.
    _, pending = await asyncio.wait(tasks, timeout=DRAIN_SECONDS)
    now = time.perf_counter()
    for task in pending:
        task.cancel()
        lat.append(now - tasks[task])
    return lat, errors, now - t0, len(pending)


async def closed_loop(client, url: str, bodies: list[dict], concurrency: int, max_requests: int, max_seconds: float):
    """`concurrency` workers, each sending the next request as soon as the last one returns."""
    lat: list[float] = []
    errors = 0
    sent = 0
    t0 = time.perf_counter()
    deadline = t0 + max_seconds

    async def worker() -> None:
        nonlocal errors, sent
        while sent < max_requests and time.perf_counter() < deadline:
            i = sent
            sent += 1
            s = time.perf_counter()
            try:
                r = await client.post(url, json=bodies[i % len(bodies)])
                ok = r.status_code == 200
            except Exception:  # noqa: BLE001 - counted, see open_loop
                ok = False
            if ok:
                lat.append(time.perf_counter() - s)
            else:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat, errors, time.perf_counter() - t0


async def _phases(base: str, name: str, records: list[dict], args) -> dict[str, Any]:
    import httpx

    single = [{"records": [r]} for r in records]
    batch = [{"records": records[i : i + args.batch]} for i in range(0, len(records) - args.batch + 1, args.batch)]
    v2 = [v2_body([r]) for r in records[:500]]
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
        # Warm-up: first requests pay lazy imports and connection set-up.
        await closed_loop(client, "/predict", single, 2, 100, 10)
        lat, err, sec, cut = await open_loop(client, "/predict", single, args.rate, args.requests, args.seconds)
        out["single_open_200rps"] = _stats(lat, err, sec, 1, target_rps=args.rate, unfinished_at_cutoff=cut)
        lat, err, sec = await closed_loop(client, "/predict", single, args.concurrency, args.requests, args.seconds)
        out["single_closed"] = _stats(lat, err, sec, 1, concurrency=args.concurrency)
        lat, err, sec = await closed_loop(client, "/predict", batch, args.concurrency, args.requests // 4, args.seconds)
        out[f"batch{args.batch}_closed"] = _stats(lat, err, sec, args.batch, concurrency=args.concurrency)
        lat, err, sec = await closed_loop(
            client, f"/v2/models/{name}/infer", v2, args.concurrency, args.requests, args.seconds / 2
        )
        out["v2_single_closed"] = _stats(lat, err, sec, 1, concurrency=args.concurrency)
    return out


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"civicml serve exited {proc.returncode}: {proc.stderr.read()[-2000:] if proc.stderr else ''}"
            )
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"civicml serve not ready within {timeout} s")


def _env(overrides: dict | None) -> dict[str, str]:
    env = clean_env()
    for k, v in (overrides or {}).items():
        if v is None:
            env.pop(k, None)  # None: leave the variable unset (the library default)
        else:
            env[k] = v
    return env


def server_latency(
    requests: int = 2000,
    seconds: float = 10.0,
    rate: float = 200.0,
    concurrency: int = 8,
    batch: int = 100,
    train_rows: int = 20_000,
    log=print,
    server_env: dict | None = None,
) -> dict[str, Any]:
    """Train a model into a temp store, serve it on loopback, run the bounded load phases.

    Args:
        server_env: Environment overrides for the server process only; a None value unsets the variable.
    """
    import yaml

    args = argparse.Namespace(requests=requests, seconds=seconds, rate=rate, concurrency=concurrency, batch=batch)
    d = fresh_dir("serve")
    proc = None
    try:
        cfg = bench_config(
            d, train_rows, 2, policy={"min_metrics": {"roc_auc": 0.5}, "fairness": [], "require_approval": "never"}
        )
        timed_run([CIVICML, "run", "--json", "-c", str(cfg)], cwd=d)
        name = yaml.safe_load(cfg.read_text())["name"]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [CIVICML, "serve", "--host", "127.0.0.1", "--port", str(port), "-c", str(cfg)],
            cwd=d,
            env=_env(server_env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        t0 = time.perf_counter()
        _wait_ready(base, proc)
        startup = time.perf_counter() - t0
        res = asyncio.run(_phases(base, name, sample_records(2000), args))
        res["server_startup_s"] = startup
        res["server_env"] = server_env or {}
        res["settings"] = {
            "requests_cap": requests,
            "seconds_cap": seconds,
            "rate": rate,
            "concurrency": concurrency,
            "batch": batch,
            "train_rows": train_rows,
        }
        for k, v in res.items():
            if isinstance(v, dict) and "p99_ms" in v:
                log(
                    f"  server {k}: p50 {v['p50_ms']:.1f} ms, p99 {v['p99_ms']:.1f} ms, "
                    f"{v['throughput_rps']:.0f} req/s, {v['rows_per_s']:.0f} rows/s, errors {v['errors']}"
                )
        return res
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        rmtree(d)


def main() -> None:
    """Command line: run the phases and print JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="cap on requests per phase")
    ap.add_argument("--seconds", type=float, default=10.0, help="cap on seconds per phase")
    ap.add_argument("--rate", type=float, default=200.0, help="open-loop requests/s")
    ap.add_argument("--concurrency", type=int, default=8, help="closed-loop workers")
    ap.add_argument("--batch", type=int, default=100, help="rows per batched request")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    res = server_latency(a.requests, a.seconds, a.rate, a.concurrency, a.batch, log=lambda m: print(m, file=sys.stderr))
    text = json.dumps(res, indent=2)
    if a.out:
        a.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
