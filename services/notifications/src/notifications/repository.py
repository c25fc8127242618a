"""MongoDB access of the notifications service: read models, followers, the
delivery log (the notification key is its ``_id``), suppressions, fan-out jobs
and webhook endpoints. Every driver call of the service lives here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from notifications.domain import TRANSACTIONAL_KINDS
from shared.contracts.venues import StopSnapshot
from shared.mongo import IndexSpec

STOPS, ATTENDEES, FOLLOWERS = "stops", "attendees", "followers"
DELIVERIES, SUPPRESSIONS, FANOUTS, WEBHOOKS = "deliveries", "suppressions", "fanouts", "webhooks"
DUPLICATE_KEY = 11000

INDEXES = [
    # Kept few on purpose: every status change rewrites each index holding it.
    # The sender's claim query: queued and due (a claim pushes next_attempt_at to the lease end).
    IndexSpec(DELIVERIES, [("channel", 1), ("status", 1), ("next_attempt_at", 1)]),
    IndexSpec(DELIVERIES, [("batch", 1)]),
    IndexSpec(DELIVERIES, [("recipient", 1), ("created_at", -1)]),
    IndexSpec(DELIVERIES, [("kind", 1), ("created_at", -1)]),
    IndexSpec(ATTENDEES, [("stop_id", 1), ("status", 1)]),
    IndexSpec(FOLLOWERS, [("email", 1)], {"unique": True}),
    IndexSpec(FOLLOWERS, [("regions", 1), ("status", 1), ("_id", 1)]),
    IndexSpec(FANOUTS, [("state", 1)]),
    IndexSpec(FANOUTS, [("batch_id", 1), ("state", 1)]),
    IndexSpec(WEBHOOKS, [("status", 1)]),
]


def now_utc() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- deliveries


def new_delivery(key: str, *, channel: str, kind: str, recipient: str, locale: str = "fr",
                 data: dict[str, Any] | None = None, batch: str | None = None,
                 due: datetime | None = None) -> dict[str, Any]:
    """A queued delivery; ``batch`` groups deliveries the sender claims together."""
    created = now_utc()
    return {
        "_id": key, "channel": channel, "kind": kind, "recipient": recipient, "locale": locale,
        "transactional": channel == "webhook" or kind in TRANSACTIONAL_KINDS,
        "data": data or {}, "batch": batch or key, "status": "queued", "attempts": 0,
        "next_attempt_at": due or created, "claimed_until": None, "claim": None,
        "created_at": created, "sent_at": None, "last_error": None,
    }


async def enqueue(db: AsyncDatabase, deliveries: list[dict[str, Any]], session: AsyncClientSession | None) -> None:
    """Insert deliveries unless their key exists (a redelivered event changes nothing).

    Upserts with $setOnInsert, because inside a transaction a duplicate-key
    error would abort the whole transaction."""
    if deliveries:
        ops = [UpdateOne({"_id": d["_id"]}, {"$setOnInsert": d}, upsert=True) for d in deliveries]
        await db[DELIVERIES].bulk_write(ops, ordered=False, session=session)


async def insert_new(db: AsyncDatabase, deliveries: list[dict[str, Any]]) -> int:
    """Bulk insert outside a transaction (fan-out); existing keys are skipped. Returns how many were new."""
    if not deliveries:
        return 0
    try:
        result = await db[DELIVERIES].insert_many(deliveries, ordered=False)
        return len(result.inserted_ids)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return exc.details.get("nInserted", 0)


async def claim(db: AsyncDatabase, channel: str, *, lease_seconds: float) -> list[dict[str, Any]]:
    """Lease the queued, due deliveries of one batch to this caller.

    A claim moves ``next_attempt_at`` to the lease end, so a sender that dies
    leaves them to be claimed again once the lease runs out, and the claim
    query never walks over deliveries another sender holds."""
    now = now_utc()
    due = {"channel": channel, "status": "queued", "next_attempt_at": {"$lte": now}}
    first = await db[DELIVERIES].find_one(due, projection={"batch": 1})
    if first is None:
        return []
    token = uuid.uuid4().hex
    until = now + timedelta(seconds=lease_seconds)
    await db[DELIVERIES].update_many(
        {**due, "batch": first["batch"]},
        {"$set": {"next_attempt_at": until, "claimed_until": until, "claim": token}},
        hint=[("batch", 1)],  # a batch is ≤ a few hundred deliveries; the status index may hold 100 000
    )
    return await db[DELIVERIES].find({"batch": first["batch"], "claim": token}).to_list()


async def record_outcomes(db: AsyncDatabase, outcomes: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Apply ``(delivery, $set fields)`` pairs, each only if this sender still holds the claim."""
    ops = [
        UpdateOne({"_id": d["_id"], "claim": d["claim"]},
                  {"$set": {**fields, "claim": None, "claimed_until": None}, "$inc": {"attempts": 1}})
        for d, fields in outcomes
    ]
    if ops:
        await db[DELIVERIES].bulk_write(ops, ordered=False)


async def release(db: AsyncDatabase, deliveries: Iterable[dict[str, Any]]) -> None:
    """Give back claimed deliveries that were not attempted (graceful stop): due again at once."""
    ops = [UpdateOne({"_id": d["_id"], "claim": d["claim"]},
                     {"$set": {"claim": None, "claimed_until": None, "next_attempt_at": now_utc()}})
           for d in deliveries]
    if ops:
        await db[DELIVERIES].bulk_write(ops, ordered=False)


async def list_deliveries(db: AsyncDatabase, filters: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    projection = {"data": 0, "claim": 0}
    cursor = db[DELIVERIES].find(filters, projection=projection).sort("created_at", -1).limit(limit)
    return await cursor.to_list()


async def requeue(db: AsyncDatabase, key: str) -> bool:
    result = await db[DELIVERIES].update_one(
        {"_id": key, "status": "failed"},
        {"$set": {"status": "queued", "next_attempt_at": now_utc(), "attempts": 0, "last_error": None}},
    )
    return result.modified_count == 1


# ---------------------------------------------------------------- suppressions


async def suppress(db: AsyncDatabase, email: str, reason: str, detail: str = "",
                   session: AsyncClientSession | None = None) -> None:
    await db[SUPPRESSIONS].update_one(
        {"_id": email}, {"$set": {"reason": reason, "detail": detail[:500], "at": now_utc()}},
        upsert=True, session=session)


async def lift_suppression(db: AsyncDatabase, email: str, reason: str, session: AsyncClientSession | None) -> None:
    await db[SUPPRESSIONS].delete_one({"_id": email, "reason": reason}, session=session)


async def suppressed_among(db: AsyncDatabase, emails: list[str]) -> dict[str, str]:
    """Which of these addresses non-transactional mail must skip, and why."""
    if not emails:
        return {}
    docs = await db[SUPPRESSIONS].find({"_id": {"$in": emails}}).to_list()
    return {d["_id"]: d["reason"] for d in docs}


# ---------------------------------------------------------------- read models


async def save_stop(tx_db: AsyncDatabase, stop: StopSnapshot, session: AsyncClientSession | None) -> None:
    doc = stop.model_dump(mode="json")
    await tx_db[STOPS].replace_one({"_id": stop.stop_id}, {"_id": stop.stop_id, **doc}, upsert=True, session=session)


async def load_stop(db: AsyncDatabase, stop_id: str, session: AsyncClientSession | None = None) -> StopSnapshot | None:
    doc = await db[STOPS].find_one({"_id": stop_id}, session=session)
    return StopSnapshot.model_validate(doc) if doc else None


async def load_stops(db: AsyncDatabase, stop_ids: set[str]) -> dict[str, StopSnapshot]:
    docs = await db[STOPS].find({"_id": {"$in": sorted(stop_ids)}}).to_list() if stop_ids else []
    return {d["_id"]: StopSnapshot.model_validate(d) for d in docs}


async def save_attendee(db: AsyncDatabase, attendee: dict[str, Any], session: AsyncClientSession | None) -> None:
    await db[ATTENDEES].update_one({"_id": attendee["_id"]}, {"$set": attendee}, upsert=True, session=session)


async def load_attendee(db: AsyncDatabase, registration_id: str,
                        session: AsyncClientSession | None = None) -> dict[str, Any] | None:
    return await db[ATTENDEES].find_one({"_id": registration_id}, session=session)


async def attendees_of(db: AsyncDatabase, stop_id: str, statuses: Iterable[str],
                       session: AsyncClientSession | None = None) -> list[dict[str, Any]]:
    """A stop's attendees (a few hundred at most) in the given statuses."""
    query = {"stop_id": stop_id, "status": {"$in": list(statuses)}}
    return await db[ATTENDEES].find(query, session=session).sort("_id", 1).to_list()


# ---------------------------------------------------------------- followers


async def follower_by_email(db: AsyncDatabase, email: str,
                            session: AsyncClientSession | None = None) -> dict[str, Any] | None:
    return await db[FOLLOWERS].find_one({"email": email}, session=session)


async def follower_by_id(db: AsyncDatabase, follower_id: str,
                         session: AsyncClientSession | None = None) -> dict[str, Any] | None:
    return await db[FOLLOWERS].find_one({"_id": follower_id}, session=session)


async def save_follower(db: AsyncDatabase, follower: dict[str, Any], session: AsyncClientSession | None) -> None:
    await db[FOLLOWERS].replace_one({"_id": follower["_id"]}, follower, upsert=True, session=session)


async def followers_page(db: AsyncDatabase, region: str, topic: str, after: str | None,
                         limit: int) -> list[dict[str, Any]]:
    """One page of a region's confirmed followers of ``topic``, by id: fan-out never holds them all."""
    query: dict[str, Any] = {"regions": region, "status": "confirmed", "topics": topic}
    if after is not None:
        query["_id"] = {"$gt": after}
    projection = {"email": 1, "locale": 1}
    return await db[FOLLOWERS].find(query, projection=projection).sort("_id", 1).limit(limit).to_list()


# ---------------------------------------------------------------- fan-out jobs


async def open_replay_batch(db: AsyncDatabase, session: AsyncClientSession | None,
                            batch_id: str) -> dict[str, Any] | None:
    return await db[FANOUTS].find_one({"batch_id": batch_id, "state": "waiting"}, session=session)


async def count_jobs(db: AsyncDatabase, session: AsyncClientSession | None, batch_id: str) -> int:
    return await db[FANOUTS].count_documents({"batch_id": batch_id}, session=session)


async def save_job(db: AsyncDatabase, job: dict[str, Any], session: AsyncClientSession | None) -> None:
    await db[FANOUTS].replace_one({"_id": job["_id"]}, job, upsert=True, session=session)


async def update_job(db: AsyncDatabase, job_id: str, fields: dict[str, Any],
                     session: AsyncClientSession | None = None) -> None:
    await db[FANOUTS].update_one({"_id": job_id}, {"$set": fields}, session=session)


async def load_job(db: AsyncDatabase, job_id: str, session: AsyncClientSession | None = None) -> dict[str, Any] | None:
    return await db[FANOUTS].find_one({"_id": job_id}, session=session)


async def running_jobs(db: AsyncDatabase) -> AsyncIterator[dict[str, Any]]:
    async for job in db[FANOUTS].find({"state": "running"}):
        yield job


# ---------------------------------------------------------------- webhooks


async def insert_endpoint(db: AsyncDatabase, endpoint: dict[str, Any]) -> None:
    await db[WEBHOOKS].insert_one(endpoint)


async def list_endpoints(db: AsyncDatabase, query: dict[str, Any]) -> list[dict[str, Any]]:
    return await db[WEBHOOKS].find(query, projection={"secret": 0}).sort("created_at", 1).to_list()


async def load_endpoint(db: AsyncDatabase, endpoint_id: str,
                        session: AsyncClientSession | None = None) -> dict[str, Any] | None:
    return await db[WEBHOOKS].find_one({"_id": endpoint_id}, session=session)


async def endpoints_for(db: AsyncDatabase, event_type: str, region: str | None,
                        session: AsyncClientSession | None) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"status": "active", "event_types": event_type}
    if region:
        query["regions"] = region
    return await db[WEBHOOKS].find(query, session=session).to_list()


async def update_endpoint(db: AsyncDatabase, endpoint_id: str, update: dict[str, Any],
                          session: AsyncClientSession | None = None) -> dict[str, Any] | None:
    return await db[WEBHOOKS].find_one_and_update({"_id": endpoint_id}, update, session=session,
                                                  return_document=ReturnDocument.AFTER)
