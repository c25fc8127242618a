"""The moving parts every service runs: Mongo client, unit of work, broker and
subscribers, outbox relay, timer runner, dead letters — started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from faststream.kafka import KafkaBroker

from shared.config import BaseServiceSettings
from shared.contracts.topics import ALL_TOPICS
from shared.logging import get_logger
from shared.messaging.broker import Producer, ensure_topics, make_broker
from shared.messaging.brokerwatch import BrokerWatch
from shared.messaging.consumer import EventConsumer
from shared.messaging.deadletters import DEAD_LETTER_INDEXES, DeadLetters
from shared.messaging.lease import Lease
from shared.messaging.relay import OutboxRelay
from shared.mongo import IndexSpec, ensure_indexes, make_client, ping
from shared.timers import TimerHandler, TimerRunner
from shared.uow import UOW_INDEXES, UnitOfWork

log = get_logger(__name__)


class ServiceRuntime:
    def __init__(self, settings: BaseServiceSettings, *, indexes: Iterable[IndexSpec] = ()):
        self.settings = settings
        self.client = make_client(settings.mongo_url, app_name=settings.service_name)
        self.db = self.client[settings.mongo_db]
        self.broker: KafkaBroker = make_broker(settings)
        self.producer = Producer(settings)
        # Also recreates the topics a new broker log lacks (Tansu does not recreate them).
        self.broker_watch = BrokerWatch(settings.kafka_bootstrap, ALL_TOPICS, settings.kafka_partitions)
        self.relay = OutboxRelay(
            self.db,
            self.producer,
            Lease(self.db, f"{settings.service_name}.relay", ttl_seconds=settings.lease_seconds),
            poll_seconds=settings.relay_poll_seconds,
            watch=settings.relay_watch,
            linger_seconds=settings.relay_linger_seconds,
            retain_seconds=settings.relay_retain_seconds,
            gate=self.broker_watch.admit,
        )
        self.timer_handlers: dict[str, TimerHandler] = {}
        self.uow = UnitOfWork(
            self.client,
            self.db,
            source=settings.service_name,
            on_events=self.relay.hand_over,
            on_timers=lambda: self.timers.wake(),
        )
        self.timers = TimerRunner(
            self.uow,
            Lease(self.db, f"{settings.service_name}.timers", ttl_seconds=settings.lease_seconds),
            self.timer_handlers,
            poll_seconds=settings.timer_poll_seconds,
        )
        self.dead_letters = DeadLetters(self.db, self.producer, settings.service_name)
        self.consumer = EventConsumer(
            service=settings.service_name,
            uow=self.uow,
            dead_letters=self.dead_letters,
            retries=settings.consumer_retries,
        )
        self.broker_watch.on_new_log(self.consumer.rewind)
        self.broker_watch.on_new_log(self._relay_broker_reset)
        self._indexes = [*UOW_INDEXES, *DEAD_LETTER_INDEXES, *indexes]
        self._extra_tasks: list[asyncio.Task[Any]] = []
        self.started = False

    def on_timer(self, kind: str, handler: TimerHandler) -> None:
        self.timer_handlers[kind] = handler

    def background(self, coro: Any) -> None:
        """Run a service-specific loop (e.g. the mail sender) for the runtime's lifetime."""
        self._extra_tasks.append(asyncio.create_task(coro))

    async def start(self) -> None:
        await _retry_start("mongo", lambda: ensure_indexes(self.db, self._indexes))
        await _retry_start("kafka topics", lambda: ensure_topics(
            self.settings.kafka_bootstrap, ALL_TOPICS, self.settings.kafka_partitions))
        self.consumer.attach(self.broker, self.broker_watch)
        await _retry_start("kafka producer", self.producer.start)
        await _retry_start("kafka broker", self.broker.start)
        await self.relay.start()
        await self.timers.start()
        await self.broker_watch.check()  # learn the cluster id before anything can change it
        self.background(self.broker_watch.run())
        self.started = True
        log.info("runtime.started", topics=self.consumer.topics)

    async def stop(self) -> None:
        for task in self._extra_tasks:
            task.cancel()
        for task in self._extra_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.timers.stop()
        await self.relay.stop()
        with contextlib.suppress(Exception):
            await self.broker.stop()
        with contextlib.suppress(Exception):
            await self.producer.stop()
        await self.client.close()
        self.started = False

    async def _relay_broker_reset(self) -> None:
        """Events already published were lost with the old log: the relay republishes what it kept."""
        self.relay.broker_reset()

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state; the service is ready when all say ok."""
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(ping(self.client), timeout=2)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        try:
            ok = await asyncio.wait_for(self.broker.ping(timeout=2), timeout=3)
            checks["broker"] = "ok" if ok else "unavailable"
        except Exception as exc:
            checks["broker"] = f"unavailable: {type(exc).__name__}"
        checks["consumers"] = self._consumer_state()
        return checks

    def _consumer_state(self) -> str:
        """aiokafka consumers can stop silently (aiokafka #703): a subscriber must be running."""
        subscribers = list(self.broker.subscribers)
        if not subscribers:
            return "ok"
        for sub in subscribers:
            if not getattr(sub, "running", True):
                return "stopped"
        return "ok"


async def _retry_start(what: str, op: Any, attempts: int = 60) -> None:
    """Dependencies may come up after us (compose, k8s, make run): wait for them, bounded."""
    for attempt in range(1, attempts + 1):
        try:
            await op()
            return
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("runtime.waiting", dependency=what, error=repr(exc))
            await asyncio.sleep(min(0.2 * attempt, 2.0))
