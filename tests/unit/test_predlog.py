"""The prediction log's group commit and its two acknowledgement modes (issue 18 item 4).

Durable (default): `write` returns only after the store holds the records, and requests that
arrive while a write is in flight share the next write (one object, one fsync on the local store).
Early (`deploy.log_ack: early`): `write` returns once queued; the records reach the store in the
background, a failed write keeps them for the next flush, and close() drains the queue.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from civicml.serving.logread import read_records
from civicml.serving.predlog import PREDICTIONS, BatchLog, LogUnavailable
from civicml.storage.store import LocalStore


class GatedStore(LocalStore):
    """A local store whose writes wait for `gate` (so a test controls when a write is in flight)."""

    def __init__(self, root):
        super().__init__(root)
        self.gate = threading.Event()
        self.puts = 0
        self.fail = False

    def put_bytes(self, key, data):
        self.gate.wait(10)
        self.puts += 1
        if self.fail:
            raise OSError("store unreachable")
        super().put_bytes(key, data)


def _rows(i: int) -> list[dict]:
    return [{"request_id": f"r{i}", "row": 0, "score": 0.5}]


def test_durable_writes_wait_for_the_store_and_share_one_write(tmp_path):
    store = GatedStore(tmp_path)

    async def main():
        log = BatchLog(store, PREDICTIONS, "srv")
        await log.start()
        first = asyncio.create_task(log.write(_rows(0)))
        await asyncio.sleep(0.05)  # the first write is in flight (blocked on the gate)
        rest = [asyncio.create_task(log.write(_rows(i))) for i in range(1, 21)]
        await asyncio.sleep(0.05)
        assert not first.done() and not any(t.done() for t in rest), "acknowledged before the store held it"
        store.gate.set()
        await asyncio.gather(first, *rest)
        await log.close()
        return log

    log = asyncio.run(main())
    # 21 requests, two writes: the first alone, the 20 that queued behind it together.
    assert store.puts == 2 and len(log.written_objects) == 2
    assert sorted(r["request_id"] for r in read_records(store, PREDICTIONS).records) == sorted(
        f"r{i}" for i in range(21)
    )


def test_durable_write_failure_is_refused(tmp_path):
    store = GatedStore(tmp_path)
    store.gate.set()
    store.fail = True

    async def main():
        log = BatchLog(store, PREDICTIONS, "srv", retries=1)
        await log.start()
        with pytest.raises(LogUnavailable, match="store unreachable"):
            await log.write(_rows(0))
        await log.close()

    asyncio.run(main())


def test_early_ack_answers_before_the_store_and_keeps_failed_records(tmp_path):
    store = GatedStore(tmp_path)
    store.fail = True

    async def main():
        log = BatchLog(store, PREDICTIONS, "srv", retries=0, early_ack=True)
        await log.start()
        await asyncio.wait_for(log.write(_rows(0)), 1)  # returns although the store holds nothing yet
        assert read_records(store, PREDICTIONS).records == []
        store.gate.set()
        await asyncio.sleep(0.1)  # a flush fails: the records stay queued
        assert read_records(store, PREDICTIONS).records == []
        store.fail = False
        await log.write(_rows(1))
        await log.close()

    asyncio.run(main())
    assert sorted(r["request_id"] for r in read_records(store, PREDICTIONS).records) == ["r0", "r1"]
