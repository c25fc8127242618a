"""The relay's paths on the real broker and database: records handed over at commit, records
only found in the outbox (another instance's commits, a key with a gap, positions from before
the relay kept them), deletion of what was published, and republishing to a broker that lost
its log."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from functools import partial
from typing import ClassVar

import pytest
from aiokafka import AIOKafkaConsumer

from shared.config import BaseServiceSettings
from shared.contracts.base import Event
from shared.messaging.broker import ensure_topics, make_producer
from shared.messaging.lease import Lease
from shared.messaging.outbox import OUTBOX, OUTBOX_POSITIONS, OUTBOX_SEQ
from shared.messaging.relay import OutboxRelay
from shared.mongo import make_client
from shared.privacy import _scrubbed
from shared.testing.eventually import eventually
from shared.testing.infra import unique_db
from shared.uow import UnitOfWork

pytestmark = pytest.mark.integration


class TickV1(Event):
    TYPE: ClassVar[str] = "test.tick.v1"
    TOPIC: ClassVar[str] = ""
    stop_id: str
    n: int
    email: str = ""


class Rig:
    """A relay with its unit of work, and a second unit of work standing for another instance
    (its commits are not handed to this relay)."""

    def __init__(self, infra, retain_seconds: float = 0.0):
        self.infra = infra
        self.model = type("TickV1", (TickV1,), {"TOPIC": unique_db("test.ticks")})
        self.client = make_client(infra.mongo_url, app_name="relay-test")
        self.db = self.client[unique_db("relay")]
        settings = BaseServiceSettings(service_name="relay-test", kafka_bootstrap=infra.kafka_bootstrap,
                                       mongo_url=infra.mongo_url)
        self.producer = make_producer(settings)
        self.relay = OutboxRelay(self.db, self.producer, Lease(self.db, "relay", ttl_seconds=10),
                                 poll_seconds=0.3, retain_seconds=retain_seconds)
        self.uow = UnitOfWork(self.client, self.db, source="test", on_events=self.relay.hand_over)
        self.elsewhere = UnitOfWork(self.client, self.db, source="test")
        self.bodies: list[dict] = []  # the bodies the last published() read

    async def __aenter__(self) -> "Rig":
        await ensure_topics(self.infra.kafka_bootstrap, [self.model.TOPIC], 1)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.relay.stop()
        await self.producer.stop()
        await self.client.close()

    async def emit(self, key: str, n: int, *, elsewhere: bool = False, email: str = "") -> None:
        async def work(tx):
            tx.emit(self.model(stop_id=key, n=n, email=email))

        await (self.elsewhere if elsewhere else self.uow).run(work)

    async def published(self, count: int, quiet: float = 0.0) -> list[tuple[str, int]]:
        """The topic's records as (key, n), in log order: at least ``count``, and whatever else arrives
        within ``quiet`` seconds after them."""
        consumer = AIOKafkaConsumer(self.model.TOPIC, bootstrap_servers=self.infra.kafka_bootstrap,
                                    auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        self.bodies = []
        try:
            async with asyncio.timeout(20):
                while len(self.bodies) < count:
                    for batch in (await consumer.getmany(timeout_ms=200)).values():
                        self.bodies.extend(json.loads(r.value) for r in batch)
            for batch in (await consumer.getmany(timeout_ms=int(quiet * 1000))).values() if quiet else ():
                self.bodies.extend(json.loads(r.value) for r in batch)
        finally:
            await consumer.stop()
        return [(body["stop_id"], body["n"]) for body in self.bodies]

    async def outbox_empty(self) -> bool:
        return await self.db[OUTBOX].count_documents({}) == 0


async def test_handed_records_are_published_in_order_then_deleted_with_positions_kept(infra):
    async with Rig(infra) as rig:
        await rig.relay.start()
        for n in range(1, 21):
            await rig.emit("a" if n % 2 else "b", n)
        seen = await rig.published(20)
        assert [n for key, n in seen if key == "a"] == list(range(1, 21, 2))
        assert [n for key, n in seen if key == "b"] == list(range(2, 21, 2))
        await eventually(rig.outbox_empty, timeout=10)
        positions = {p["_id"]: p["seq"] async for p in rig.db[OUTBOX_POSITIONS].find({})}
        assert positions == {"a": 10, "b": 10}


async def test_a_key_with_a_gap_waits_for_the_record_committed_elsewhere(infra):
    async with Rig(infra) as rig:
        await rig.relay.start()
        await rig.emit("k", 1)
        await rig.published(1)
        # seq 2 is committed by another instance (never handed over), seq 3 here: 3 must not go before 2.
        await rig.emit("k", 2, elsewhere=True)
        await rig.emit("k", 3)
        assert await rig.published(3, quiet=0.5) == [("k", 1), ("k", 2), ("k", 3)]


async def test_a_starting_relay_publishes_what_is_left_in_the_outbox(infra):
    async with Rig(infra) as rig:
        for n in range(1, 6):
            await rig.emit("k", n, elsewhere=True)
        await rig.relay.start()
        assert await rig.published(5) == [("k", n) for n in range(1, 6)]
        await eventually(rig.outbox_empty, timeout=10)


async def test_keys_published_before_positions_existed_are_not_held_back(infra):
    """An outbox written by the relay that deleted each record on publishing: counters, no positions."""
    async with Rig(infra) as rig:
        await rig.db[OUTBOX_SEQ].insert_one({"_id": "old", "seq": 57})
        await rig.relay.start()
        await rig.emit("old", 58)
        assert await rig.published(1) == [("old", 58)]
        assert (await rig.db[OUTBOX_POSITIONS].find_one({"_id": "old"}))["seq"] == 58


async def test_broker_reset_republishes_the_retained_records_before_new_ones(infra):
    async with Rig(infra, retain_seconds=60) as rig:
        await rig.relay.start()
        for n in (1, 2):
            await rig.emit("k", n)
        await rig.published(2)
        await eventually(rig.outbox_empty, timeout=10)
        rig.relay.broker_reset()
        await rig.emit("k", 3)
        assert await rig.published(5, quiet=1.0) == [("k", 1), ("k", 2), ("k", 1), ("k", 2), ("k", 3)]


async def test_without_retention_a_broker_reset_republishes_nothing(infra):
    async with Rig(infra) as rig:
        await rig.relay.start()
        await rig.emit("k", 1)
        await rig.published(1)
        rig.relay.broker_reset()
        await rig.emit("k", 2)
        assert await rig.published(2, quiet=1.0) == [("k", 1), ("k", 2)]


async def test_an_erased_address_does_not_leave_again_from_the_relays_memory(infra):
    async with Rig(infra, retain_seconds=60) as rig:
        await rig.relay.start()
        await rig.emit("k", 1, email="Ada@Example.org")
        await rig.published(1)
        rig.relay.rewrite_payloads(partial(_scrubbed, b"ada@example.org", b"erased-1@erased.invalid"))
        rig.relay.broker_reset()
        await rig.published(2, quiet=0.5)
        assert [body["email"] for body in rig.bodies] == ["Ada@Example.org", "erased-1@erased.invalid"]


async def test_a_relay_that_takes_its_lease_back_from_another_instance_reads_the_positions_again(infra):
    """While another instance held the lease it published k:2 and deleted it: positions remembered
    from before would wait for a k:2 that no scan can find."""
    async with Rig(infra) as rig:
        lease = rig.relay._lease
        assert await lease.acquire()
        await rig.emit("k", 1)
        assert await rig.relay.publish_batch() == 1
        # Our lease lapses; another instance takes it, publishes k:2, records its position, deletes it.
        await rig.db.locks.update_one({"_id": lease.name}, {"$set": {"owner": "elsewhere", "expires_at": datetime.now(UTC)}})
        await rig.emit("k", 2, elsewhere=True)
        await rig.db[OUTBOX_POSITIONS].update_one({"_id": "k"}, {"$max": {"seq": 2}})
        await rig.db[OUTBOX].delete_many({"key": "k", "seq": 2})
        assert await lease.acquire()  # ours again, once the other's has lapsed
        await rig.emit("k", 3)
        assert await rig.relay.publish_batch() == 1
        assert await rig.published(2, quiet=0.5) == [("k", 1), ("k", 3)]
