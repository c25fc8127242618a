"""The local broker (Tansu) keeps topics in memory: after its restart they are gone. A running
service must recreate them so its consumers get partitions again and events flow without a
restart (found by tests/faults: no event was consumed after an empty-broker restart)."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from shared.config import BaseServiceSettings
from shared.contracts.base import CloudEventHeaders, Event
from shared.contracts.topics import ALL_TOPICS
from shared.messaging.broker import ensure_topics
from shared.runtime import ServiceRuntime
from shared.testing.eventually import eventually
from shared.testing.infra import start_infra, unique_db

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class StopNoteV1(Event):
    TYPE: ClassVar[str] = "test.restart.note.v1"
    TOPIC: ClassVar[str] = ALL_TOPICS[0]  # a topic the runtime creates and keeps
    stop_id: str


@pytest.fixture
def own_infra():
    infra = start_infra()
    yield infra
    infra.stop()


async def topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def service(infra) -> ServiceRuntime:
    """A service on a 1-partition topic; its handler records each note in ``seen``."""
    settings = BaseServiceSettings(service_name=unique_db("svc"), mongo_url=infra.mongo_url,
                                   kafka_bootstrap=infra.kafka_bootstrap, kafka_partitions=1,
                                   relay_poll_seconds=0.2)
    return ServiceRuntime(settings)


async def emit(runtime: ServiceRuntime, stop_id: str) -> None:
    async def work(tx):
        tx.emit(StopNoteV1(stop_id=stop_id))
    await runtime.uow.run(work)


async def test_topics_come_back_and_events_flow_after_an_empty_broker_restart(own_infra):
    runtime = service(own_infra)

    @runtime.consumer.on(StopNoteV1)
    async def on_note(event: StopNoteV1, tx, ce) -> None:
        await tx.db.seen.insert_one({"stop_id": event.stop_id}, session=tx.session)

    await runtime.start()
    try:
        for n in range(10):  # the consumer's position moves well past where the new log starts
            await emit(runtime, f"before-{n}")
        await eventually(lambda: runtime.db.seen.find_one({"stop_id": "before-9"}), timeout=60, interval=0.2)

        own_infra.kafka.stop()
        own_infra.start_kafka()  # empty: no topics, no offsets
        await eventually(lambda: _has_all(own_infra.kafka_bootstrap), timeout=30, interval=0.5)

        await emit(runtime, "after")
        await eventually(lambda: runtime.db.seen.find_one({"stop_id": "after"}), timeout=60, interval=0.2)
    finally:
        await runtime.stop()


async def _has_all(bootstrap: str) -> bool:
    return set(ALL_TOPICS) <= await topics(bootstrap)


async def test_a_consumer_past_the_new_log_start_misses_nothing_after_an_empty_broker_restart(own_infra):
    """Issue #8. The consumer has reached offset 11 of a 1-partition topic when the broker comes back
    empty and 25 events land in the new log before the consumer is back: all 25 must be handled.
    Without the epoch reset the consumer resumes at its old position (in memory, then committed into
    the new broker) and skips offsets 0..10 of the new log."""
    runtime = service(own_infra)
    entered, release = asyncio.Event(), asyncio.Event()

    @runtime.consumer.on(StopNoteV1)
    async def on_note(event: StopNoteV1, tx, ce) -> None:
        if event.stop_id == "hold":  # the consumer is busy while the broker restarts
            entered.set()
            await release.wait()
        await tx.db.seen.insert_one({"stop_id": event.stop_id}, session=tx.session)

    await runtime.start()
    try:
        for n in range(10):
            await emit(runtime, f"before-{n}")
        await emit(runtime, "hold")  # offset 10: the consumer's position is 11 while it handles it
        await eventually(entered.is_set, timeout=60, interval=0.1)

        own_infra.kafka.stop()
        own_infra.start_kafka()  # empty, and a new cluster id
        await ensure_topics(own_infra.kafka_bootstrap, ALL_TOPICS, 1)
        after = [f"after-{n}" for n in range(25)]
        await publish_raw(own_infra.kafka_bootstrap, after)  # offsets 0..24 of the new log
        release.set()

        async def all_handled() -> bool:
            seen = {d["stop_id"] async for d in runtime.db.seen.find({"stop_id": {"$in": after}})}
            assert seen == set(after), f"missing {sorted(set(after) - seen, key=lambda s: int(s[6:]))}"
            return True

        await eventually(all_handled, timeout=60, interval=0.5)
    finally:
        release.set()
        await runtime.stop()


async def publish_raw(bootstrap: str, stop_ids: list[str]) -> None:
    """What another service's relay publishes into the new log (CloudEvents headers, JSON body)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for stop_id in stop_ids:
            event = StopNoteV1(stop_id=stop_id)
            headers = CloudEventHeaders(type=StopNoteV1.TYPE, source="test").to_kafka()
            await producer.send_and_wait(StopNoteV1.TOPIC, value=event.model_dump_json().encode(),
                                         key=stop_id.encode(), headers=headers)
    finally:
        await producer.stop()
