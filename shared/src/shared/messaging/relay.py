"""The outbox relay: publishes committed outbox records to Kafka, in order per key.

One relay is active per service (a lease). Records committed by this process are
handed to it right after the commit and published from memory: on the local
database, reading a record back costs more than publishing it (docs/benchmarks.md),
so the common path never reads the outbox. Records committed by other instances, or
left behind by a relay that died, are found by scanning the outbox: on taking the
lease, every ``poll_seconds``, when a key shows a gap, and after any failure.

Progress is a position per key (``outbox_positions``: the highest seq published),
written once per batch after Kafka acknowledged it; a record is published only when
every lower seq of its key has been. Published records are then deleted in the
background. A relay that dies before writing positions publishes the batch again:
the consumers' inboxes absorb the duplicates.

Published records are also kept in memory for ``retain_seconds``, so that a broker
which lost its log (the memory-only local broker after a restart) can be given them
again by ``broker_reset``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import Any

from pymongo import DeleteOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from shared.logging import get_logger
from shared.messaging.lease import Lease
from shared.messaging.outbox import OUTBOX, OUTBOX_POSITIONS, OUTBOX_SEQ
from shared.mongo import is_unavailable

log = get_logger(__name__)

Record = dict[str, Any]

# Bounds the memory of the republish buffer whatever the rate (~1 KB per record).
MAX_RETAINED = 50_000
RETIRE_CHUNK = 500
# Deleting costs the database more than publishing costs the broker, so it waits until the
# relay has caught up; past this backlog it no longer waits (the outbox would keep growing).
RETIRE_BACKLOG = 50_000
GAP_RESCAN_SECONDS = 0.05


class OutboxRelay:
    def __init__(
        self,
        db: AsyncDatabase,
        producer: Any,
        lease: Lease,
        *,
        poll_seconds: float = 1.0,
        batch_size: int = 5000,
        watch: bool = False,
        linger_seconds: float = 0.0,
        retain_seconds: float = 0.0,
        gate: Callable[[], Awaitable[Any]] | None = None,
    ):
        self._db = db
        self._outbox = db[OUTBOX]
        self._positions = db[OUTBOX_POSITIONS]
        self._producer = producer
        self._lease = lease
        self._poll = poll_seconds
        self._batch = batch_size
        self._watch = watch
        self._linger = linger_seconds
        self._retain = retain_seconds
        # Waits while the broker is away or a new broker log is being taken up (BrokerWatch.admit):
        # a new record must not reach a new log before the retained ones are queued again.
        self._gate = gate
        self._wake = asyncio.Event()
        self._retire_wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._handed: list[Record] = []
        # Published-through seq per key, loaded under the lease term ``_term``.
        self._pos: dict[str, int] | None = None
        self._term = 0
        # Known, unpublished records per key and seq (from hand-offs and scans).
        self._waiting: dict[str, dict[int, Record]] = {}
        self._next_scan = 0.0
        # Published (positions stored) record ids still to delete; a dict keeps their order.
        self._retiring: dict[str, None] = {}
        self._retained: deque[tuple[float, Record]] = deque()
        self._replay: list[Record] = []
        self.published_total = 0

    def hand_over(self, records: list[Record]) -> None:
        """Records this process has just committed: publish them without reading them back."""
        self._handed.extend(records)
        self._wake.set()

    def broker_reset(self) -> None:
        """The broker lost its log: publish again, first, every record published in the last
        ``retain_seconds`` (consumers that had read them drop them in their inbox)."""
        self._trim_retained()
        self._replay = sorted((record for _, record in self._retained), key=_order)
        log.warning("relay.broker_reset", republishing=len(self._replay))
        self._wake.set()

    def rewrite_payloads(self, rewrite: Callable[[bytes], bytes | None]) -> None:
        """Apply ``rewrite`` to the body of every record held in memory (erasure: an address must not
        leave again from here); None leaves a body as it is."""
        held = [*self._handed, *self._replay, *(r for _, r in self._retained)]
        held += [r for records in self._waiting.values() for r in records.values()]
        for record in held:
            body = rewrite(bytes(record["payload"]))
            if body is not None:
                record["payload"] = body

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="outbox-relay"),
            asyncio.create_task(self._retire(), name="outbox-retire"),
        ]
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
                if self._gate is not None:
                    await self._gate()
                if await self._lease.hold():
                    if await self.publish_batch() >= self._batch:
                        continue
                else:
                    self._drop_queued()  # another instance publishes; it scans what we committed
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database down: the records are in the outbox
                log.warning("relay.retry", error=repr(exc), unavailable=is_unavailable(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            await self._sleep()

    async def _sleep(self) -> None:
        timeout = max(0.0, self._next_scan - time.monotonic())
        self._idle.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            if self._linger:
                await asyncio.sleep(self._linger)
        self._idle.clear()
        self._wake.clear()

    def _drop_queued(self) -> None:
        """Forget the records held only in memory: the outbox has them, the next scan takes them in."""
        self._waiting.clear()
        self._handed.clear()
        self._next_scan = 0.0

    async def publish_batch(self) -> int:
        """Publish what is ready (at most one batch); returns how many records were sent.

        On any failure the relay drops what it holds in memory and scans the outbox again; its
        positions stay, as they only move once Kafka has acknowledged and they are stored."""
        try:
            return await self._publish_batch()
        except BaseException:
            self._drop_queued()
            raise

    async def _publish_batch(self) -> int:
        if self._pos is None or self._term != self._lease.term:
            await self._load()
        elif time.monotonic() >= self._next_scan:
            await self._scan()
        if self._replay:
            replay = self._replay[: self._batch]
            await self._send(replay)
            del self._replay[: len(replay)]
            return len(replay)
        self._take_handed()
        batch = self._ready()
        if not batch:
            return 0
        await self._send(batch)
        published: dict[str, int] = {}
        for record in batch:
            published[record["key"]] = record["seq"]
        await self._positions.bulk_write(
            [UpdateOne({"_id": key}, {"$max": {"seq": seq}}, upsert=True) for key, seq in published.items()],
            ordered=False,
        )
        self._pos.update(published)
        self._retiring.update(dict.fromkeys(record["_id"] for record in batch))
        self._retire_wake.set()
        if self._retain:
            now = time.monotonic()
            self._retained.extend((now, record) for record in batch)
            self._trim_retained()
        self.published_total += len(batch)
        return len(batch)

    async def _send(self, records: list[Record]) -> None:
        """Send in order and wait for every acknowledgement; the first failure is raised."""
        futures = [
            await self._producer.send(
                r["topic"],
                value=bytes(r["payload"]),
                key=r["key"].encode(),
                headers=[(name, bytes(value)) for name, value in r["headers"]],
            )
            for r in records
        ]
        for future in futures:
            await future

    def _take_handed(self) -> None:
        assert self._pos is not None
        for record in self._handed:
            if record["seq"] > self._pos.get(record["key"], 0):
                self._waiting.setdefault(record["key"], {})[record["seq"]] = record
        self._handed.clear()

    def _ready(self) -> list[Record]:
        """Per key, the run of records that follows its position, up to one batch in all."""
        assert self._pos is not None
        batch: list[Record] = []
        for key in list(self._waiting):
            records = self._waiting[key]
            position = self._pos.get(key, 0)
            for seq in [s for s in records if s <= position]:
                del records[seq]
            following = position + 1
            while following in records and len(batch) < self._batch:
                batch.append(records.pop(following))
                following += 1
            if records and len(batch) < self._batch:
                # A gap: a lower seq committed elsewhere, not seen yet. Look again soon.
                self._next_scan = min(self._next_scan, time.monotonic() + GAP_RESCAN_SECONDS)
            if not records:
                del self._waiting[key]
        return batch

    async def _load(self) -> None:
        """Positions and the outbox, read in one snapshot on taking the lease."""
        term = self._lease.term
        async with self._db.client.start_session() as session:
            async with await session.start_transaction():
                positions = {p["_id"]: p["seq"] async for p in self._positions.find({}, session=session)}
                counters = {c["_id"]: c["seq"] async for c in self._db[OUTBOX_SEQ].find({}, session=session)}
                heads = await self._outbox.find({}, {"key": 1, "seq": 1}, session=session).to_list()
        lowest: dict[str, int] = {}
        for head in heads:
            lowest[head["key"]] = min(head["seq"], lowest.get(head["key"], head["seq"]))
        # Keys published before positions existed: what left the outbox had been published.
        derived = {key: lowest[key] - 1 if key in lowest else seq for key, seq in counters.items() if key not in positions}
        if derived := {key: seq for key, seq in derived.items() if seq > 0}:
            await self._positions.bulk_write(
                [UpdateOne({"_id": key}, {"$max": {"seq": seq}}, upsert=True) for key, seq in derived.items()],
                ordered=False,
            )
        self._pos, self._term = {**positions, **derived}, term
        self._waiting.clear()
        await self._scan()

    async def _scan(self) -> None:
        """Take in the committed records not yet known; queue published ones for deletion."""
        assert self._pos is not None
        self._next_scan = time.monotonic() + self._poll
        heads = await self._outbox.find({}, {"key": 1, "seq": 1}).to_list()
        unknown = False
        for head in heads:
            if head["seq"] <= self._pos.get(head["key"], 0):
                self._retiring.setdefault(head["_id"], None)
            elif head["seq"] not in self._waiting.get(head["key"], {}):
                unknown = True
        if self._retiring:
            self._retire_wake.set()
        if unknown:
            async for record in self._outbox.find({}):
                if record["seq"] > self._pos.get(record["key"], 0):
                    self._waiting.setdefault(record["key"], {})[record["seq"]] = record

    def _trim_retained(self) -> None:
        horizon = time.monotonic() - self._retain
        while self._retained and (self._retained[0][0] < horizon or len(self._retained) > MAX_RETAINED):
            self._retained.popleft()

    async def _retire(self) -> None:
        """Delete published records, off the publishing path."""
        while True:
            await self._retire_wake.wait()
            self._retire_wake.clear()
            while self._retiring:
                if len(self._retiring) < RETIRE_BACKLOG:
                    await self._idle.wait()
                ids = list(islice(self._retiring, RETIRE_CHUNK))
                try:
                    await self._outbox.bulk_write([DeleteOne({"_id": i}) for i in ids], ordered=False)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # database down: they stay published, deleted later
                    log.warning("relay.retire_retry", error=repr(exc))
                    await asyncio.sleep(1.0)
                    continue
                for record_id in ids:
                    self._retiring.pop(record_id, None)

    async def _watch_inserts(self) -> None:
        """Scan on other instances' commits; the poll covers any gap in the stream."""
        while True:
            try:
                async with await self._outbox.watch([{"$match": {"operationType": "insert"}}]) as stream:
                    async for _change in stream:
                        self._next_scan = 0.0
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("relay.watch_restart", error=repr(exc))
                await asyncio.sleep(self._poll)


def _order(record: Record) -> tuple[str, int]:
    return record["key"], record["seq"]
