"""Prediction and feedback logs, written to the store in batches with group commit.

Durability choice (default, `deploy.log_ack: durable`): *flush before acknowledging* (group
commit), not a local write-ahead file. A request's log records are queued; the flusher writes the
queue as one JSON-lines object (serialised and written in a worker thread, off the event loop; on
the local store that is one fsync'd file) at once when `interval_seconds` is 0 — requests that
arrive while a write is in flight share the next write, so N concurrent requests cost one write,
not N — or when the queue reaches `max_records`, or every `interval_seconds` when one is set. Only
then does each request get its response. So:

- every acknowledged prediction is already in the store — no local state to replay, which
  matters on a cluster where the pod's disk (an `emptyDir` under a read-only root filesystem)
  disappears with the pod after a SIGKILL;
- an unreachable store means predictions are refused (503) rather than served unlogged: for
  decisions about people, a decision without evidence is worse than no decision;
- the cost is latency (one write, plus the interval when one is set), shared by the batch.

Opt-in (`deploy.log_ack: early`): a request is answered as soon as its records are queued; the
flusher writes them in the background the same way. A crash (SIGKILL, OOM kill, node loss) loses
the records queued but not yet written: up to `log_flush_seconds` of acknowledged predictions plus
the write in flight (and, while the store is unreachable, everything queued since, up to
`MAX_QUEUED_EARLY` records; beyond that requests are refused with 503 rather than queued). SIGTERM
still drains the queue. Such predictions were served to callers without evidence of them in the log.

On shutdown (uvicorn's lifespan exit, after in-flight requests finished) the
flusher drains whatever is left. Objects are named
`logs/<kind>/<YYYY-MM-DD>/<server-id>-<seq>.jsonl`; the server id is unique per
process so replicas and restarts never overwrite each other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from datetime import datetime, timezone
from typing import Any

from civicml.storage.store import Store

log = logging.getLogger("civicml.serving")

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
LOG_PREFIX = "logs"
# `early_ack`: records queued while the store is unreachable, at most; then requests are refused.
MAX_QUEUED_EARLY = 100_000
# Event-loop turns the flusher gives running requests before it takes a batch (see `BatchLog._run`).
YIELDS_BEFORE_FLUSH = 3
# Batches written at the same time: one slow write (an fsync, an S3 PUT) does not hold every request behind it,
# and a local file system commits concurrent fsyncs together. Each batch is still one object.
WRITES_IN_FLIGHT = 4


class LogUnavailable(RuntimeError):
    """The log could not be written; the request must not be acknowledged."""


def new_server_id() -> str:
    """Host (pod) name plus a random suffix: unique per process."""
    host = os.environ.get("HOSTNAME") or socket.gethostname() or "server"
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in host)[:40]
    return f"{safe}-{secrets.token_hex(3)}"


class BatchLog:
    """One kind of log (predictions or feedback) with group-commit flushing.

    Args:
        early_ack: Answer once queued instead of once written (`deploy.log_ack: early`; see above).
    """

    def __init__(
        self,
        store: Store,
        kind: str,
        server_id: str,
        max_records: int = 256,
        interval_seconds: float = 0.0,
        retries: int = 2,
        early_ack: bool = False,
    ):
        self.store = store
        self.kind = kind
        self.server_id = server_id
        self.max_records = max_records
        self.interval = interval_seconds
        self.retries = retries
        self.early_ack = early_ack
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future | None]] = []
        self._count = 0
        self._seq = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._slots = asyncio.Semaphore(WRITES_IN_FLIGHT)
        self._inflight: set[asyncio.Task] = set()
        self._closed = False
        self.written_objects: list[str] = []

    async def start(self) -> None:
        """Start the background flusher (inside the running event loop)."""
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"civicml-{self.kind}-flusher")

    async def write(self, records: list[dict[str, Any]]) -> None:
        """Queue records and return once they are in the store (or once queued, with `early_ack`).

        Raises:
            LogUnavailable: the store write failed (after retries), the log is closed, or (early_ack)
                the queue is full because the store has been unreachable.
        """
        if self._closed or self._task is None:
            raise LogUnavailable(f"{self.kind} log is closed; the server is shutting down")
        if self.early_ack and self._count + len(records) > MAX_QUEUED_EARLY:
            raise LogUnavailable(f"{self._count} {self.kind} records are waiting for {self.store.describe()}")
        fut = None if self.early_ack else asyncio.get_running_loop().create_future()
        self._pending.append((records, fut))
        self._count += len(records)
        if (self.interval <= 0 or self._count >= self.max_records) and self._wake is not None:
            self._wake.set()
        if fut is not None:
            await fut

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval if self.interval > 0 else None)
            except asyncio.TimeoutError:
                pass
            # Let the requests that are already running reach their write first: without this the first
            # request after a flush is written alone and the rest wait a whole write for the next one.
            for _ in range(YIELDS_BEFORE_FLUSH):
                await asyncio.sleep(0)
            # While WRITES_IN_FLIGHT writes are under way, records keep queueing into the next (bigger) batch.
            await self._slots.acquire()
            self._wake.clear()
            if not self._pending:
                self._slots.release()
                continue
            task = asyncio.create_task(self._flush())
            self._inflight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._inflight.discard(task)
        self._slots.release()

    def _put(self, key: str, batch: list[tuple[list[dict[str, Any]], Any]]) -> None:
        """Serialise and write one batch (in a worker thread: JSON encoding and the fsync stay off the loop)."""
        lines = [json.dumps(r, sort_keys=True, default=str) for records, _ in batch for r in records]
        self.store.put_bytes(key, ("\n".join(lines) + "\n").encode())

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending, self._count = self._pending, [], 0
        self._seq += 1
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        key = f"{LOG_PREFIX}/{self.kind}/{day}/{self.server_id}-{self._seq:08d}.jsonl"
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                await asyncio.to_thread(self._put, key, batch)
                error = None
                break
            except Exception as err:  # noqa: BLE001 - any store failure must fail the waiting requests, not the loop
                error = err
                log.warning("writing %s failed (attempt %d): %s", key, attempt + 1, err)
                await asyncio.sleep(0.05 * (attempt + 1))
        if error is None:
            self.written_objects.append(key)
        elif self.early_ack:
            # Already answered: keep the records for the next flush rather than drop them.
            self._pending[:0] = batch
            self._count += sum(len(records) for records, _ in batch)
            if self._wake is not None and not self._closed:
                await asyncio.sleep(0.5)  # back off, then try again without waiting for the next request
                self._wake.set()
        self._settle(batch, error)

    def _settle(self, batch: list[tuple[list[dict[str, Any]], Any]], error: Exception | None) -> None:
        for _, fut in batch:
            if fut is None or fut.done():
                continue
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(
                    LogUnavailable(f"could not write the {self.kind} log to {self.store.describe()}: {error}")
                )

    async def close(self) -> None:
        """Stop the flusher and write everything still queued."""
        self._closed = True
        if self._task is not None:
            if self._wake is not None:
                self._wake.set()
            await self._task
            self._task = None
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
        await self._flush()
