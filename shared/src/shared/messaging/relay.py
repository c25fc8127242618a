"""The outbox relay: publishes committed outbox records to Kafka, in order per key.

One relay is active per service (a lease). It is woken right after a local
commit and by a change stream on the outbox (commits of other instances), and
polls as a fallback, so it never depends on resuming a change stream. A crash
between publishing and marking republishes: consumers' inboxes absorb that.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shared.logging import get_logger
from shared.messaging.lease import Lease
from pymongo import DeleteOne

from shared.messaging.outbox import OUTBOX
from shared.mongo import is_unavailable

log = get_logger(__name__)


class OutboxRelay:
    def __init__(
        self,
        db: AsyncDatabase,
        producer: Any,
        lease: Lease,
        *,
        poll_seconds: float = 1.0,
        batch_size: int = 500,
        watch: bool = True,
        linger_seconds: float = 0.0,
    ):
        self._outbox = db[OUTBOX]
        self._producer = producer
        self._lease = lease
        self._poll = poll_seconds
        self._batch = batch_size
        self._watch = watch
        self._linger = linger_seconds
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.published_total = 0

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="outbox-relay")]
        if self._watch:
            self._tasks.append(asyncio.create_task(self._watch_inserts(), name="outbox-watch"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._lease.release()

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                if await self._lease.acquire():
                    if await self.publish_batch() >= self._batch:
                        continue
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database down: keep the records, retry later
                log.warning("relay.retry", error=repr(exc), unavailable=is_unavailable(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            await self._sleep()

    async def _sleep(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
            if self._linger:
                await asyncio.sleep(self._linger)
        self._wake.clear()

    async def publish_batch(self) -> int:
        """Publish one batch of unpublished records; returns how many were published."""
        records = await self._outbox.find({}).sort([("created_at", 1), ("seq", 1)]).limit(self._batch).to_list()
        if not records:
            return 0
        # Within a key, seq is the commit order; across keys order does not matter.
        records.sort(key=lambda r: (r["key"], r.get("seq", 0)))
        futures = [
            await self._producer.send(
                r["topic"],
                value=bytes(r["payload"]),
                key=r["key"].encode(),
                headers=[(name, bytes(value)) for name, value in r["headers"]],
            )
            for r in records
        ]
        sent: list[Any] = []
        failure: BaseException | None = None
        for record, future in zip(records, futures):
            try:
                await future
                sent.append(record["_id"])
            except Exception as exc:
                failure = exc
                break
        if sent:
            await self._outbox.bulk_write([DeleteOne({"_id": record_id}) for record_id in sent], ordered=False)
            self.published_total += len(sent)
        if failure is not None:
            raise failure
        return len(sent)

    async def _watch_inserts(self) -> None:
        """Wake on other instances' commits; the poll covers any gap in the stream."""
        while True:
            try:
                async with await self._outbox.watch([{"$match": {"operationType": "insert"}}]) as stream:
                    async for _change in stream:
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("relay.watch_restart", error=repr(exc))
                await asyncio.sleep(self._poll)

    def broker_reset(self) -> None:
        self.wake()
