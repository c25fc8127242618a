"""Unit of work: one MongoDB transaction holding the business change, its outbox
records, its timers and (for consumers) the inbox claim, committed together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.contracts.base import Event
from shared.messaging.outbox import outbox_record, write_outbox
from shared.mongo import IndexSpec, run_in_transaction

T = TypeVar("T")

INBOX = "inbox"
TIMERS = "timers"

UOW_INDEXES = [
    IndexSpec(TIMERS, [("due_at", 1)]),
    # Processed event ids are kept 30 days: far longer than any redelivery window.
    IndexSpec(INBOX, [("processed_at", 1)], {"expireAfterSeconds": 30 * 24 * 3600}),
]


class AlreadyProcessed(Exception):
    """The inbox already holds this event id for this consumer: a redelivery to skip."""


@dataclass
class Tx:
    """What a handler sees of the transaction it runs in."""

    session: AsyncClientSession
    db: AsyncDatabase
    source: str
    correlation_id: str | None = None
    causation_id: str | None = None
    events: list[Event] = field(default_factory=list)
    timers_changed: bool = False

    def emit(self, event: Event) -> None:
        """Queue an integration event; it is written to the outbox at commit."""
        self.events.append(event)

    async def claim(self, event_id: str, consumer: str) -> None:
        """Record that ``consumer`` handled ``event_id``; raises AlreadyProcessed on a redelivery."""
        try:
            await self.db[INBOX].insert_one(
                {"_id": f"{consumer}:{event_id}", "processed_at": datetime.now(UTC)}, session=self.session
            )
        except DuplicateKeyError as exc:
            raise AlreadyProcessed(event_id) from exc

    async def schedule(self, timer_id: str, kind: str, due_at: datetime, payload: dict[str, Any]) -> None:
        """Create or re-plan a durable timer (same id → replaced)."""
        await self.db[TIMERS].replace_one(
            {"_id": timer_id},
            {"_id": timer_id, "kind": kind, "due_at": due_at, "payload": payload, "attempts": 0},
            upsert=True,
            session=self.session,
        )
        self.timers_changed = True

    async def cancel_timer(self, timer_id: str) -> None:
        await self.db[TIMERS].delete_one({"_id": timer_id}, session=self.session)


class UnitOfWork:
    def __init__(
        self,
        client: AsyncMongoClient,
        db: AsyncDatabase,
        *,
        source: str,
        on_events: Callable[[list[dict[str, Any]]], None] | None = None,
        on_timers: Callable[[], None] | None = None,
    ):
        self.client = client
        self.db = db
        self.source = source
        self._on_events = on_events
        self._on_timers = on_timers

    async def run(
        self,
        work: Callable[[Tx], Awaitable[T]],
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> T:
        """Run ``work`` in a retried transaction; events and timers commit with it."""
        last_tx: list[Tx] = []
        last_records: list[dict[str, Any]] = []

        async def attempt(session: AsyncClientSession) -> T:
            tx = Tx(session, self.db, self.source, correlation_id, causation_id)
            last_tx[:] = [tx]
            result = await work(tx)
            last_records[:] = [
                outbox_record(e, source=self.source, correlation_id=correlation_id, causation_id=causation_id)
                for e in tx.events
            ]
            await write_outbox(self.db, session, last_records)
            return result

        result = await run_in_transaction(self.client, attempt)
        tx = last_tx[0]
        if last_records and self._on_events:
            self._on_events(list(last_records))
        if tx.timers_changed and self._on_timers:
            self._on_timers()
        return result
