"""A small HTTP/1.1 load generator, run as its own process so it never shares an interpreter with a server.

Both servers of the comparison get the same requests from this one program. It speaks just enough
HTTP/1.1 over asyncio streams (pre-encoded requests, keep-alive, Content-Length bodies) to cost
little CPU per request: httpx costs about as much per request as the server under test, which on 2
shared cores would cap the figure at the client's speed rather than the server's.

Modes (every phase is bounded in requests and seconds):

* `closed`: `--connections` connections, each sending its next request when the last answer has
  arrived: throughput.
* `open`: requests sent at a fixed `--rate` over at most `--connections` connections; latency
  counted from each request's scheduled send time, so a stalled server cannot hide its queue (no
  coordinated omission). Requests not sent or not answered by the end of the drain time are
  counted as `unfinished` with their latency so far (a lower bound).

Prints one JSON object: requests, errors, seconds, throughput_rps, p50/p90/p99/max in ms.

Usage:
    python benchmarks/loadgen.py --url http://127.0.0.1:8080/predict --body-file body.jsonl closed --connections 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

DRAIN_SECONDS = 10.0


def requests_from(url: str, bodies: list[bytes]) -> tuple[str, int, list[bytes]]:
    """(host, port, pre-encoded HTTP/1.1 POST requests) for `url`, one per body."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    out = []
    for body in bodies:
        head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return host, port, out


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one response; return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


def _pct(ms: list[float], q: float) -> float:
    v = sorted(ms)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))] if v else float("nan")


def stats(lat: list[float], errors: int, seconds: float, **extra) -> dict:
    """Summary of one phase (latencies in seconds in, milliseconds out)."""
    ms = [x * 1000 for x in lat]
    return {
        "requests": len(lat),
        "errors": errors,
        "seconds": seconds,
        "throughput_rps": len(lat) / seconds if seconds else 0.0,
        "p50_ms": _pct(ms, 50),
        "p90_ms": _pct(ms, 90),
        "p99_ms": _pct(ms, 99),
        "max_ms": max(ms, default=0.0),
        **extra,
    }


async def paced(
    rate: float, n: int, one: Callable[[int, float], Awaitable[None]], drain: float
) -> tuple[list[float], float]:
    """Start `one(i, scheduled)` for `i < n` at a fixed `rate`, each at its scheduled time, whatever the answers.

    A server slower than `rate` builds a queue; it gets `drain` seconds after the last send to empty
    it, then what is left is cancelled and counted at its latency so far (a lower bound) rather than
    waited for without limit.

    Returns:
        The latencies (seconds) of the cancelled requests, and the seconds from the first send to the cutoff.
    """
    t0 = time.perf_counter()
    tasks = {}
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks[asyncio.create_task(one(i, scheduled))] = scheduled
    _, pending = await asyncio.wait(tasks, timeout=drain)
    now = time.perf_counter()
    for task in pending:
        task.cancel()
    return [now - tasks[task] for task in pending], now - t0


async def back_to_back(
    senders: list[Callable[[int], Awaitable[bool]]], max_requests: int, seconds: float
) -> tuple[list[float], int, float]:
    """One worker per sender, each sending the next request as soon as its last one is answered.

    Args:
        senders: `send(i)` sends request number `i` and returns whether it was answered 200.
        max_requests: Requests at most, over all workers.
        seconds: No request is started after this many seconds.

    Returns:
        The latencies (seconds) of the answered requests, the count of the others, the elapsed seconds.
    """
    lat: list[float] = []
    errors = 0
    sent = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds

    async def worker(send: Callable[[int], Awaitable[bool]]) -> None:
        nonlocal sent, errors
        while sent < max_requests and time.perf_counter() < deadline:
            i = sent
            sent += 1
            s = time.perf_counter()
            if await send(i):
                lat.append(time.perf_counter() - s)
            else:
                errors += 1

    await asyncio.gather(*(worker(send) for send in senders))
    return lat, errors, time.perf_counter() - t0


async def closed(host: str, port: int, reqs: list[bytes], connections: int, max_requests: int, seconds: float) -> dict:
    """`connections` back-to-back senders, one connection each; throughput and latency per request."""
    conns = [await asyncio.open_connection(host, port) for _ in range(connections)]

    def sender(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Callable[[int], Awaitable[bool]]:
        async def send(i: int) -> bool:
            writer.write(reqs[i % len(reqs)])
            return await _answer(reader) == 200

        return send

    try:
        lat, errors, elapsed = await back_to_back([sender(*c) for c in conns], max_requests, seconds)
    finally:
        for _, writer in conns:
            writer.close()
    return stats(lat, errors, elapsed, connections=connections)


async def open_loop(host: str, port: int, reqs: list[bytes], rate: float, connections: int, seconds: float) -> dict:
    """Fixed-rate sends over a pool of connections; latency from each scheduled send time."""
    n = int(rate * seconds)
    lat: list[float] = []
    errors = 0
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(host, port))

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        reader, writer = await pool.get()
        try:
            writer.write(reqs[i % len(reqs)])
            status = await _answer(reader)
        finally:
            pool.put_nowait((reader, writer))
        if status == 200:
            lat.append(time.perf_counter() - scheduled)
        else:
            errors += 1

    unfinished, elapsed = await paced(rate, n, one, DRAIN_SECONDS)
    lat += unfinished
    while not pool.empty():
        pool.get_nowait()[1].close()
    return stats(lat, errors, elapsed, target_rps=rate, connections=connections, unfinished=len(unfinished))


def main() -> None:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--body-file", type=Path, required=True, help="one JSON request body per line")
    ap.add_argument("--seconds", type=float, default=10.0)
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("closed")
    c.add_argument("--connections", type=int, default=8)
    c.add_argument("--requests", type=int, default=100_000)
    o = sub.add_parser("open")
    o.add_argument("--rate", type=float, default=200.0)
    o.add_argument("--connections", type=int, default=64)
    a = ap.parse_args()
    bodies = [line.encode() for line in a.body_file.read_text().splitlines() if line.strip()]
    host, port, reqs = requests_from(a.url, bodies)
    if a.mode == "closed":
        res = asyncio.run(closed(host, port, reqs, a.connections, a.requests, a.seconds))
    else:
        res = asyncio.run(open_loop(host, port, reqs, a.rate, a.connections, a.seconds))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
