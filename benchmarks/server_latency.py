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
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    CIVICML,
    clean_env,
    emit,
    free_port,
    fresh_dir,
    rmtree,
    served_records,
    stop,
    train_served_model,
    wait_ready,
)
from loadgen import back_to_back, paced, stats

MAX_IN_FLIGHT = 256
DRAIN_SECONDS = 15.0


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


def _stats(lat: list[float], errors: int, elapsed: float, rows_per_request: int, **extra: Any) -> dict[str, Any]:
    rows_per_s = len(lat) * rows_per_request / elapsed if elapsed else 0.0
    return stats(lat, errors, elapsed, rows_per_s=rows_per_s, rows_per_request=rows_per_request, **extra)


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

    unfinished, elapsed = await paced(rate, n, one, DRAIN_SECONDS)
    return lat + unfinished, errors, elapsed, len(unfinished)


async def closed_loop(client, url: str, bodies: list[dict], concurrency: int, max_requests: int, max_seconds: float):
    """`concurrency` workers, each sending the next request as soon as the last one returns."""

    async def send(i: int) -> bool:
        try:
            r = await client.post(url, json=bodies[i % len(bodies)])
        except Exception:  # noqa: BLE001 - counted, see open_loop
            return False
        return r.status_code == 200

    return await back_to_back([send] * concurrency, max_requests, max_seconds)


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
        cfg = train_served_model(d, train_rows)
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
        wait_ready(f"{base}/v2/health/ready", proc)
        startup = time.perf_counter() - t0
        records, refused = served_records(d / ".civicml", 2000)
        res = asyncio.run(_phases(base, name, records, args))
        res["bodies_refused_by_schema"] = refused
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
        if proc is not None:
            stop(proc)
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
    emit(res, a.out)


if __name__ == "__main__":
    main()
