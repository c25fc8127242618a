"""Transactional outbox: records written in the caller's transaction, published by the relay.

A record holds everything needed to publish without the event class: topic,
key, the JSON body and the CloudEvents headers. ``seq`` orders the records of
one key: it is drawn from a per-key counter inside the same transaction, so
the business write that serialises a stop also serialises its events.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.contracts.base import CloudEventHeaders, Event

OUTBOX = "outbox"
OUTBOX_SEQ = "outbox_seq"
# Published-through seq per key, written by the relay only (never by the writers'
# transactions, so marking a batch published cannot make a writer's commit conflict).
OUTBOX_POSITIONS = "outbox_positions"


def outbox_record(event: Event, *, source: str, correlation_id: str | None, causation_id: str | None) -> dict[str, Any]:
    ce = CloudEventHeaders(
        type=event.TYPE,
        source=source,
        subject=event.subject(),
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
    return {
        "_id": ce.id,
        "topic": event.TOPIC,
        "key": event.key(),
        "type": event.TYPE,
        "payload": event.to_json(),
        "headers": [[name, value] for name, value in ce.to_kafka()],
        "created_at": ce.time,
    }


async def write_outbox(db: AsyncDatabase, session: AsyncClientSession, records: list[dict[str, Any]]) -> None:
    """Insert records in the caller's transaction, numbering them per key."""
    if not records:
        return
    per_key = Counter(r["key"] for r in records)
    next_seq: dict[str, int] = {}
    for key, count in per_key.items():
        counter = await db[OUTBOX_SEQ].find_one_and_update(
            {"_id": key}, {"$inc": {"seq": count}}, upsert=True, session=session, return_document=ReturnDocument.AFTER
        )
        next_seq[key] = counter["seq"] - count + 1
    for record in records:
        record["seq"] = next_seq[record["key"]]
        next_seq[record["key"]] += 1
    await db[OUTBOX].insert_many(records, session=session, ordered=True)
