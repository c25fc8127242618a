"""Broker, producer and topic factories with the delivery settings the design requires."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from shared.config import BaseServiceSettings


def make_broker(settings: BaseServiceSettings, **options) -> KafkaBroker:
    """FastStream broker: commit after the handler ran (never before), acks=all.

    The idempotent producer is switched by config: on against real Kafka,
    off against the local Tansu broker, which rejects InitProducerId.
    """
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=settings.service_name,
        acks="all",
        enable_idempotence=settings.kafka_idempotent,
        ack_policy=AckPolicy.ACK,
        **options,
    )


def make_producer(settings: BaseServiceSettings, **options) -> AIOKafkaProducer:
    """The relay's producer: acks=all so a published record survives a broker failover."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.service_name}-relay",
        acks="all",
        enable_idempotence=settings.kafka_idempotent,
        linger_ms=options.pop("linger_ms", 1),
        request_timeout_ms=options.pop("request_timeout_ms", 10000),
        **options,
    )


class Producer:
    """The relay's producer, created at start: aiokafka needs a running event loop to build
    one, and a service's app (with its runtime) is built before uvicorn starts the loop."""

    def __init__(self, settings: BaseServiceSettings, **options):
        self._settings = settings
        self._options = options
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self._producer is None:
            self._producer = make_producer(self._settings, **self._options)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("producer not started")
        return self._producer

    async def send(self, *args, **kwargs):
        return await self._started().send(*args, **kwargs)

    async def send_and_wait(self, *args, **kwargs):
        return await self._started().send_and_wait(*args, **kwargs)


async def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int, replication: int = 1) -> None:
    """Create topics that do not exist yet (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        await create_missing_topics(admin, topics, partitions, replication)
    finally:
        await admin.close()


async def create_missing_topics(admin: AIOKafkaAdminClient, topics: Iterable[str], partitions: int,
                                replication: int = 1) -> None:
    existing = set(await admin.list_topics())
    missing = [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in topics if t not in existing]
    if missing:
        try:
            await admin.create_topics(missing)
        except TopicAlreadyExistsError:
            pass
