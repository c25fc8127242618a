"""The delivery promises on the real local broker and database: outbox atomicity,
per-key order, duplicates absorbed by the inbox, poison messages dead-lettered,
consumers resuming after a restart."""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.config import BaseServiceSettings
from shared.contracts.base import CloudEventHeaders, Event
from shared.contracts.topics import dlq
from shared.messaging.broker import ensure_topics
from shared.runtime import ServiceRuntime
from shared.testing.eventually import eventually
from shared.testing.infra import unique_db

pytestmark = pytest.mark.integration


class PingV1(Event):
    TYPE: ClassVar[str] = "test.ping.v1"
    TOPIC: ClassVar[str] = "test.pings.v1"
    stop_id: str
    n: int


def ping_type(topic: str) -> type[PingV1]:
    """A PingV1 on its own topic, so tests never read each other's messages."""
    return type("PingV1", (PingV1,), {"TOPIC": topic})


class Boom(Exception):
    pass


def make_runtime(infra, service: str, db: str, model: type[PingV1]) -> ServiceRuntime:
    settings = BaseServiceSettings(
        service_name=service, mongo_url=infra.mongo_url, mongo_db=db, kafka_bootstrap=infra.kafka_bootstrap,
        relay_poll_seconds=0.2, timer_poll_seconds=0.2, consumer_retries=1,
    )
    runtime = ServiceRuntime(settings)
    runtime.consumer._base_delay = 0.01

    runtime.ping = model

    @runtime.consumer.on(model)
    async def on_ping(event: PingV1, tx, ce) -> None:
        if event.n < 0:
            raise Boom("negative ping")
        await tx.db.seen.insert_one({"key": event.stop_id, "n": event.n, "ce_id": ce.id}, session=tx.session)
        await tx.db.counters.update_one({"_id": f"{event.stop_id}:{event.n}"}, {"$inc": {"c": 1}}, upsert=True,
                                        session=tx.session)

    return runtime


@pytest.fixture
async def runtime(infra):
    model = ping_type(unique_db("test.pings"))
    await ensure_topics(infra.kafka_bootstrap, [model.TOPIC], 3)
    rt = make_runtime(infra, unique_db("svc"), unique_db("db"), model)
    await rt.start()
    yield rt
    await rt.stop()


async def emit(rt: ServiceRuntime, key: str, n: int) -> None:
    async def work(tx):
        await tx.db.business.insert_one({"key": key, "n": n}, session=tx.session)
        tx.emit(rt.ping(stop_id=key, n=n))

    await rt.uow.run(work)


async def test_outbox_commits_and_rolls_back_with_the_business_write(runtime):
    async def failing(tx):
        await tx.db.business.insert_one({"key": "rollback"}, session=tx.session)
        tx.emit(runtime.ping(stop_id="rollback", n=1))
        await tx.db.outbox.insert_one({"_id": "probe-written-inside"}, session=tx.session)
        raise Boom("business rule failed after the writes")

    with pytest.raises(Boom):
        await runtime.uow.run(failing)
    assert await runtime.db.business.count_documents({"key": "rollback"}) == 0
    assert await runtime.db.outbox.count_documents({}) == 0

    await emit(runtime, "commit", 1)
    assert await runtime.db.business.count_documents({"key": "commit"}) == 1
    record = await runtime.db.outbox.find_one({"key": "commit"})
    assert record["topic"] == runtime.ping.TOPIC and record["seq"] == 1


async def test_relay_publishes_in_order_per_key_and_marks_everything(runtime):
    async def emit_in_order(key: str) -> None:
        for n in range(30):
            await emit(runtime, key, n)

    # Three keys committing concurrently; within a key, commits are in n order.
    await asyncio.gather(*(emit_in_order(key) for key in ("a", "b", "c")))

    async def all_seen():
        return await runtime.db.seen.count_documents({}) == 90

    await eventually(all_seen, timeout=20)
    for key in ("a", "b", "c"):
        seen = [d["n"] async for d in runtime.db.seen.find({"key": key}).sort("_id", 1)]
        assert seen == list(range(30)), f"key {key} consumed out of commit order"

    async def outbox_empty():
        return await runtime.db.outbox.count_documents({}) == 0

    await eventually(outbox_empty, timeout=10)  # published records are deleted, in the background
    positions = {p["_id"]: p["seq"] async for p in runtime.db.outbox_positions.find({})}
    assert positions == {"a": 30, "b": 30, "c": 30}


async def test_relay_crash_between_publish_and_mark_is_absorbed_by_the_inbox(runtime, monkeypatch):
    await runtime.relay.stop()
    await emit(runtime, "dup", 1)
    await emit(runtime, "dup", 2)

    positions = runtime.db.outbox_positions
    original = positions.bulk_write
    calls = {"n": 0}

    async def crash_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("relay killed before recording the positions")
        return await original(*args, **kwargs)

    monkeypatch.setattr(runtime.relay, "_positions", positions)
    monkeypatch.setattr(positions, "bulk_write", crash_once)
    with pytest.raises(ConnectionError):
        await runtime.relay.publish_batch()  # published, position not recorded
    assert await runtime.relay.publish_batch() == 2  # starting over from the outbox: the same records again

    async def both_applied():
        return await runtime.db.counters.count_documents({"_id": {"$in": ["dup:1", "dup:2"]}}) == 2

    await eventually(both_applied)
    await asyncio.sleep(0.5)  # let the duplicates arrive too
    counts = {d["_id"]: d["c"] async for d in runtime.db.counters.find({})}
    assert counts == {"dup:1": 1, "dup:2": 1}
    assert await runtime.db.inbox.count_documents({}) == 2


async def raw_send(infra, topic: str, value: bytes, headers, key: bytes = b"k") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def ce(type_: str = PingV1.TYPE) -> list[tuple[str, bytes]]:
    return CloudEventHeaders(type=type_, source="test").to_kafka()


async def test_poison_message_is_dead_lettered_and_the_partition_keeps_flowing(infra, runtime):
    await raw_send(infra, runtime.ping.TOPIC, b"{not json", ce())
    await raw_send(infra, runtime.ping.TOPIC, json.dumps({"stop_id": "k", "n": "NaN"}).encode(), ce())
    await raw_send(infra, runtime.ping.TOPIC, json.dumps({"stop_id": "k", "n": -1}).encode(), ce())
    await raw_send(infra, runtime.ping.TOPIC, json.dumps({"stop_id": "k", "n": 1}).encode(), [])
    await raw_send(infra, runtime.ping.TOPIC, json.dumps({"anything": 1}).encode(), ce("test.unknown.v1"))
    await raw_send(infra, runtime.ping.TOPIC, json.dumps({"stop_id": "k", "n": 7, "new_field": "tolerated"}).encode(), ce())

    async def good_one_processed():
        return await runtime.db.counters.find_one({"_id": "k:7"})

    await eventually(good_one_processed, timeout=20)
    letters = await runtime.dead_letters.list()
    reasons = sorted(letter["reason"] for letter in letters)
    assert len(letters) == 4, reasons
    assert any("invalid test.ping.v1" in r and "n:" in r for r in reasons)
    assert any("Boom: negative ping" in r for r in reasons)
    assert any("missing CloudEvents header" in r for r in reasons)

    consumer = AIOKafkaConsumer(dlq(runtime.settings.service_name), bootstrap_servers=infra.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=5000)
        records = [r for batch in batches.values() for r in batch]
    finally:
        await consumer.stop()
    assert len(records) == 4
    headers = dict(records[0].headers)
    assert headers["dlq_original_topic"] == runtime.ping.TOPIC.encode()
    assert {"dlq_original_partition", "dlq_original_offset", "dlq_error"} <= set(headers)


async def test_dead_letter_replay_runs_the_event_again(infra, runtime):
    await raw_send(infra, runtime.ping.TOPIC, json.dumps({"stop_id": "r", "n": -5}).encode(), ce())
    letters = await eventually(runtime.dead_letters.list, timeout=20)
    outcome = await runtime.consumer.replay(letters[0]["id"])
    assert outcome == "dead_lettered"  # still poison: it stays a dead letter
    assert (await runtime.dead_letters.list())[0]["status"] == "dead"


async def test_consumer_restarted_mid_stream_resumes_without_loss(infra):
    model = ping_type(unique_db("test.pings"))
    await ensure_topics(infra.kafka_bootstrap, [model.TOPIC], 3)
    service, db = unique_db("svc"), unique_db("db")
    first = make_runtime(infra, service, db, model)
    await first.start()
    for n in range(60):
        await emit(first, "restart", n)

    async def some_processed():
        return await first.db.seen.count_documents({}) >= 10

    await eventually(some_processed, timeout=20)
    await first.stop()

    second = make_runtime(infra, service, db, model)
    await second.start()
    try:
        async def all_processed():
            return await second.db.counters.count_documents({}) == 60

        await eventually(all_processed, timeout=30)
        assert await second.db.counters.count_documents({"c": {"$ne": 1}}) == 0
    finally:
        await second.stop()
