"""Consuming events: routing by ce_type, inbox dedupe, and the error policy.

- unknown event type → acknowledged and logged (tolerant reader), never dead-lettered;
- missing headers, bad JSON, schema violation, ``PoisonEvent`` → dead-lettered at once;
- other handler errors → a few retries with backoff, then dead-lettered;
- database unreachable, or write conflicts still colliding after the unit of work's retries →
  retried until they pass (the message is not at fault).
Each partition is processed sequentially (FastStream #2618: a concurrent
subscriber's commit can skip a message still in flight).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError

from shared.contracts.base import CloudEventHeaders, Event
from shared.logging import bound_contextvars, get_logger
from shared.messaging.brokerwatch import BrokerWatch
from shared.messaging.deadletters import DeadLetters, RawRecord
from shared.mongo import is_transient, is_unavailable
from shared.uow import AlreadyProcessed, Tx, UnitOfWork

log = get_logger(__name__)

EventHandler = Callable[[Any, Tx, CloudEventHeaders], Awaitable[None]]


class PoisonEvent(Exception):
    """The event can never be applied (e.g. it contradicts this service's state): dead-letter it."""


@dataclass(frozen=True)
class Route:
    model: type[Event]
    handler: EventHandler


class EventConsumer:
    def __init__(
        self,
        *,
        service: str,
        uow: UnitOfWork,
        dead_letters: DeadLetters,
        retries: int = 3,
        retry_base_delay: float = 0.1,
    ):
        self.service = service
        self._uow = uow
        self._dead_letters = dead_letters
        self._retries = retries
        self._base_delay = retry_base_delay
        self._routes: dict[str, Route] = {}
        self._extra_topics: set[str] = set()
        self._subscriber: Any = None

    def on(self, model: type[Event]) -> Callable[[EventHandler], EventHandler]:
        def register(handler: EventHandler) -> EventHandler:
            self._routes[model.TYPE] = Route(model, handler)
            return handler

        return register

    def also_listen(self, *topics: str) -> None:
        """Subscribe to topics whose events are only logged (kept for tolerant-reader symmetry)."""
        self._extra_topics.update(topics)

    @property
    def event_types(self) -> list[str]:
        """The event types this consumer handles (anything else is logged and acknowledged)."""
        return sorted(self._routes)

    @property
    def topics(self) -> list[str]:
        return sorted({route.model.TOPIC for route in self._routes.values()} | self._extra_topics)

    def attach(self, broker: KafkaBroker, watch: BrokerWatch | None = None) -> None:
        """One sequential subscriber over every topic this service consumes, group = service.
        With a ``watch``, each message first passes its gate (see shared.messaging.brokerwatch)."""
        if not self.topics:
            return
        subscriber = self._subscriber = broker.subscriber(
            *self.topics,
            group_id=self.service,
            auto_offset_reset="earliest",
            decoder=_keep_raw_body,
            title=f"{self.service}-events",
        )

        @subscriber
        async def on_message(msg: KafkaMessage) -> None:
            raw = msg.raw_message
            if watch is not None and not await watch.admit():
                # Fetched from the old log before the rewind: acknowledging it commits the rewound
                # position, and the record at these coordinates of the new log is read again.
                log.info("event.skipped_old_log", topic=raw.topic, partition=raw.partition, offset=raw.offset)
                return
            await self.process(
                RawRecord(
                    topic=raw.topic,
                    partition=raw.partition,
                    offset=raw.offset,
                    key=raw.key.decode("utf-8", "replace") if raw.key else None,
                    value=raw.value or b"",
                    headers=list(raw.headers or []),
                )
            )

    async def rewind(self) -> None:
        """Read every assigned partition again from its first record, and commit that start, so no
        offset reached in an old log (in memory or committed) is used in a new one. The inbox absorbs
        what is read twice. Partitions assigned later start from those commits (or the earliest)."""
        consumer = getattr(self._subscriber, "consumer", None)  # aiokafka's, while the subscriber runs
        if consumer is None:
            return
        assigned = consumer.assignment()
        if not assigned:
            return
        starts = await consumer.beginning_offsets(list(assigned))
        for partition, offset in starts.items():
            consumer.seek(partition, offset)
        await consumer.commit({partition: offset for partition, offset in starts.items()})
        log.warning("consumer.rewound", partitions={f"{tp.topic}:{tp.partition}": o for tp, o in starts.items()})

    async def process(self, record: RawRecord) -> str:
        """Handle one record; returns the outcome: handled, duplicate, ignored or dead_lettered."""
        try:
            ce = CloudEventHeaders.from_kafka(record.headers)
        except ValueError as exc:
            return await self._dead_letter(record, str(exc))
        with bound_contextvars(event_id=ce.id, event_type=ce.type, correlation_id=ce.correlation_id):
            route = self._routes.get(ce.type)
            if route is None:
                log.info("event.ignored", reason="type not handled by this consumer", topic=record.topic)
                return "ignored"
            try:
                event = route.model.model_validate(json.loads(record.value))
            except (ValueError, ValidationError) as exc:
                return await self._dead_letter(record, f"invalid {ce.type}: {_short(exc)}")
            return await self._apply(record, ce, route, event)

    async def _apply(self, record: RawRecord, ce: CloudEventHeaders, route: Route, event: Event) -> str:
        failures = 0
        outage_delay = self._base_delay

        async def work(tx: Tx) -> None:
            await tx.claim(ce.id, self.service)
            await route.handler(event, tx, ce)

        while True:
            try:
                await self._uow.run(work, correlation_id=ce.correlation_id, causation_id=ce.id)
                return "handled"
            except AlreadyProcessed:
                log.info("event.duplicate")
                return "duplicate"
            except PoisonEvent as exc:
                return await self._dead_letter(record, str(exc))
            except Exception as exc:
                # Database down, or write conflicts outlasting the unit of work's own retries (other
                # writers on the same documents): not the message's fault, so never a dead letter.
                if is_transient(exc):
                    log.warning("event.db_unavailable" if is_unavailable(exc) else "event.write_conflict",
                                error=repr(exc))
                    await asyncio.sleep(outage_delay)
                    outage_delay = min(outage_delay * 2, 5.0)
                    continue
                failures += 1
                if failures > self._retries:
                    return await self._dead_letter(record, f"{type(exc).__name__}: {exc}")
                log.warning("event.retry", attempt=failures, error=repr(exc))
                await asyncio.sleep(random.uniform(0.5, 1.0) * self._base_delay * 2**failures)

    async def _dead_letter(self, record: RawRecord, reason: str) -> str:
        log.error("event.dead_lettered", reason=reason, topic=record.topic, partition=record.partition, offset=record.offset)
        await self._dead_letters.record(record, reason, consumer=self.service)
        return "dead_lettered"

    async def replay(self, dead_letter_id: str) -> str:
        """Run a dead letter through the pipeline again (after a fix); returns the outcome."""
        record = await self._dead_letters.load(dead_letter_id)
        outcome = await self.process(record)
        await self._dead_letters.mark_replayed(dead_letter_id, outcome)
        return outcome


async def _keep_raw_body(msg: Any) -> bytes:
    # FastStream would parse JSON before our handler and drop what fails to
    # parse; we parse ourselves so that such a message is dead-lettered.
    return msg.body


def _short(exc: Exception, limit: int = 800) -> str:
    if isinstance(exc, ValidationError):
        text = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:10])
    else:
        text = str(exc)
    return text[:limit]
