"""Partitioning: two consumer instances of one group share a 9-partition topic.

Built the way shared/messaging/consumer.py builds a service's subscriber (FastStream
KafkaBroker from ``make_broker``, one subscriber, group = the service, commit after
the handler). Keys are stop ids, as the relay sends them: each instance gets a share,
a key never splits across instances while the assignment is stable, each key arrives
in order, and the union is every message exactly once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker, KafkaMessage

from shared.config import BaseServiceSettings
from shared.contracts.topics import DEFAULT_PARTITIONS
from shared.messaging.broker import ensure_topics, make_broker
from shared.testing.eventually import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

KEYS = 60  # stop ids
PER_KEY = 5


def instance(bootstrap: str, topic: str, group: str, seen: list[tuple[str, int, int]]) -> KafkaBroker:
    broker = make_broker(BaseServiceSettings(service_name=group, kafka_bootstrap=bootstrap), logger=None)

    @broker.subscriber(topic, group_id=group, auto_offset_reset="earliest")
    async def on_message(msg: KafkaMessage) -> None:
        raw = msg.raw_message
        seen.append((raw.key.decode(), int(raw.value.decode()), raw.partition))

    return broker


def assigned(broker: KafkaBroker) -> set[int]:
    [sub] = list(broker.subscribers)
    consumer = getattr(sub, "consumer", None)
    return {tp.partition for tp in consumer.assignment()} if consumer is not None else set()


async def test_two_instances_of_one_group_share_the_partitions_and_keep_each_stop_whole(infra):
    assert DEFAULT_PARTITIONS == 9
    topic, group = f"scale.test.{uuid.uuid4().hex[:8]}", f"scale-{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.kafka_bootstrap, [topic], DEFAULT_PARTITIONS)
    seen: dict[str, list[tuple[str, int, int]]] = {"a": [], "b": []}
    brokers = {name: instance(infra.kafka_bootstrap, topic, group, seen[name]) for name in seen}
    started = time.monotonic()
    try:
        await asyncio.gather(*(broker.start() for broker in brokers.values()))

        async def stable_split() -> bool:
            a, b = assigned(brokers["a"]), assigned(brokers["b"])
            return bool(a) and bool(b) and not (a & b) and len(a | b) == DEFAULT_PARTITIONS

        await eventually(stable_split, timeout=45, interval=0.2)
        assignment = {name: assigned(broker) for name, broker in brokers.items()}

        producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for seq in range(PER_KEY):
                for k in range(KEYS):
                    await producer.send(topic, key=f"stop-{k:03d}".encode(), value=str(seq).encode())
            await producer.flush()
        finally:
            await producer.stop()

        total = KEYS * PER_KEY
        await eventually(lambda: len(seen["a"]) + len(seen["b"]) >= total, timeout=30, interval=0.2)
        assert {name: assigned(broker) for name, broker in brokers.items()} == assignment, "rebalanced mid-test"
    finally:
        await asyncio.gather(*(broker.stop() for broker in brokers.values()), return_exceptions=True)

    # Both instances received a share, and only from their own partitions.
    assert seen["a"] and seen["b"], {name: len(v) for name, v in seen.items()}
    for name, records in seen.items():
        assert {partition for _, _, partition in records} <= assignment[name]
    # No stop id is split across instances; each stop's events arrive in order.
    owners: dict[str, set[str]] = defaultdict(set)
    order: dict[str, list[int]] = defaultdict(list)
    for name, records in seen.items():
        for key, seq, _ in records:
            owners[key].add(name)
            order[key].append(seq)
    assert all(len(names) == 1 for names in owners.values()), {k: v for k, v in owners.items() if len(v) > 1}
    assert all(seqs == list(range(PER_KEY)) for seqs in order.values()), "per-key order or exactly-once broken"
    # The union is every message exactly once.
    union = sorted((key, seq) for records in seen.values() for key, seq, _ in records)
    assert union == sorted((f"stop-{k:03d}", s) for k in range(KEYS) for s in range(PER_KEY))
    assert time.monotonic() - started < 60
    print(f"shares: a={len(seen['a'])} ({sorted(assignment['a'])}), b={len(seen['b'])} ({sorted(assignment['b'])})")
