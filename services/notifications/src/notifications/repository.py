"""MongoDB access of the notifications service: read models, followers, the
delivery log (the notification key is its ``_id``), suppressions, fan-out jobs
and webhook endpoints. Every driver call of the service lives here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
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
BATCHES = "delivery_batches"
# A batch being written is held by its writer for this long: a writer that dies leaves it to the senders.
WRITER_HOLD_SECONDS = 120.0
DUPLICATE_KEY = 11000

INDEXES = [
    # Kept few on purpose: every write rewrites each index of the document. No index holds
    # a delivery's status, so marking a delivery sent touches no index entry.
    IndexSpec(DELIVERIES, [("batch", 1)]),
    IndexSpec(DELIVERIES, [("recipient", 1), ("created_at", -1)]),
    IndexSpec(DELIVERIES, [("kind", 1), ("created_at", -1)]),
    # The senders' claim query: batches of a channel that are due (a claim moves the time to the lease end).
    IndexSpec(BATCHES, [("channel", 1), ("next_attempt_at", 1)]),
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
    """A queued delivery. ``batch`` is set when it is written (see ``enqueue`` / ``insert_batch``)."""
    created = now_utc()
    return {
        "_id": key, "channel": channel, "kind": kind, "recipient": recipient, "locale": locale,
        "transactional": channel == "webhook" or kind in TRANSACTIONAL_KINDS,
        "data": data or {}, "batch": batch, "status": "queued", "attempts": 0,
        "next_attempt_at": due or created, "created_at": created, "sent_at": None, "last_error": None,
    }


def _batch_doc(batch_id: str, channel: str, size: int, *, due: datetime, claim: str | None) -> dict[str, Any]:
    now = now_utc()
    return {"_id": batch_id, "channel": channel, "size": size, "next_attempt_at": due,
            "claim": claim, "claimed_until": due if claim else None, "created_at": now}


def _new_batch_id() -> str:
    return uuid.uuid4().hex


def _by_channel(deliveries: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for d in deliveries:
        groups.setdefault(d["channel"], []).append(d)
    return [g[i:i + size] for g in groups.values() for i in range(0, len(g), size)]


async def enqueue(db: AsyncDatabase, deliveries: list[dict[str, Any]], session: AsyncClientSession | None,
                  *, batch_size: int = 500) -> None:
    """Insert deliveries unless their key exists (a redelivered event changes nothing), in new batches.

    Upserts with $setOnInsert, because inside a transaction a duplicate-key
    error would abort the whole transaction. In a transaction the batch
    document commits with its deliveries; outside one, ``insert_batch``'s
    writer hold covers a crash between the writes."""
    for chunk in _by_channel(deliveries, batch_size):
        if session is None:
            await insert_batch(db, chunk, upsert=True)
            continue
        batch_id = _new_batch_id()
        ops = [UpdateOne({"_id": d["_id"]}, {"$setOnInsert": {**d, "batch": batch_id}}, upsert=True) for d in chunk]
        result = await db[DELIVERIES].bulk_write(ops, ordered=False, session=session)
        if result.upserted_count:
            due = min(d["next_attempt_at"] for d in chunk)
            await db[BATCHES].insert_one(_batch_doc(batch_id, chunk[0]["channel"], result.upserted_count,
                                                    due=due, claim=None), session=session)


async def insert_batch(db: AsyncDatabase, deliveries: list[dict[str, Any]], *, upsert: bool = False) -> int:
    """Write deliveries of one channel as one new batch, outside a transaction; existing keys are skipped
    (they stay in the batch that first wrote them). Returns how many were new.

    The batch document is written first, held by the writer (as if claimed), then
    the deliveries, then it is handed to the senders: a writer that dies in between
    leaves a batch the senders take over once the hold expires, never a delivery
    without a batch."""
    if not deliveries:
        return 0
    batch_id = _new_batch_id()
    until = now_utc() + timedelta(seconds=WRITER_HOLD_SECONDS)
    await db[BATCHES].insert_one(_batch_doc(batch_id, deliveries[0]["channel"], len(deliveries), due=until,
                                            claim="writer"))
    docs = [{**d, "batch": batch_id} for d in deliveries]
    if upsert:
        result = await db[DELIVERIES].bulk_write(
            [UpdateOne({"_id": d["_id"]}, {"$setOnInsert": d}, upsert=True) for d in docs], ordered=False)
        inserted = result.upserted_count
    else:
        try:
            inserted = len((await db[DELIVERIES].insert_many(docs, ordered=False)).inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            inserted = exc.details.get("nInserted", 0)
    if inserted:
        due = min(d["next_attempt_at"] for d in deliveries)
        await db[BATCHES].update_one({"_id": batch_id}, {"$set": {"claim": None, "claimed_until": None,
                                                                  "next_attempt_at": due, "size": inserted}})
    else:
        await db[BATCHES].delete_one({"_id": batch_id})
    return inserted


@dataclass
class Claim:
    """A batch leased to one sender, with its deliveries still queued (due or not)."""
    batch_id: str
    token: str
    until: datetime
    deliveries: list[dict[str, Any]] = field(default_factory=list)


async def claim(db: AsyncDatabase, channel: str, *, lease_seconds: float) -> Claim | None:
    """Lease one due batch of ``channel`` to this caller: one write for the whole batch.

    The lease moves the batch's ``next_attempt_at`` to the lease end, so a sender
    that dies leaves the batch to be claimed again once the lease runs out, and
    the claim query never walks over batches another sender holds. Deliveries
    already sent (or failed) are not returned: a taken-over batch only sends
    what is still queued."""
    now = now_utc()
    token = uuid.uuid4().hex
    until = now + timedelta(seconds=lease_seconds)
    doc = await db[BATCHES].find_one_and_update(
        {"channel": channel, "next_attempt_at": {"$lte": now}},
        {"$set": {"next_attempt_at": until, "claimed_until": until, "claim": token}},
        projection={"_id": 1},
    )
    if doc is None:
        return None
    # Equality on the indexed batch only (≤ a few hundred documents); the status is checked here.
    docs = await db[DELIVERIES].find({"batch": doc["_id"]}).to_list()
    queued = [d for d in docs if d["status"] == "queued"]
    return Claim(doc["_id"], token, until, queued)


async def settle(db: AsyncDatabase, held: Claim, next_due: datetime | None) -> None:
    """Give the batch back: gone when nothing is left to send, else due again at ``next_due``."""
    if next_due is None:
        await db[BATCHES].delete_one({"_id": held.batch_id, "claim": held.token})
    else:
        await db[BATCHES].update_one({"_id": held.batch_id, "claim": held.token},
                                     {"$set": {"claim": None, "claimed_until": None, "next_attempt_at": next_due}})


async def release(db: AsyncDatabase, held: Claim) -> None:
    """Graceful stop: the batch's unsent deliveries are due again at once (for another sender)."""
    await settle(db, held, now_utc())


async def record_outcomes(db: AsyncDatabase, outcomes: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Apply ``(delivery, $set fields)`` pairs in one bulk write (by ``_id``; only still-queued ones)."""
    ops = [
        UpdateOne({"_id": d["_id"], "status": "queued"}, {"$set": fields, "$inc": {"attempts": 1}})
        for d, fields in outcomes
    ]
    if ops:
        await db[DELIVERIES].bulk_write(ops, ordered=False)


async def list_deliveries(db: AsyncDatabase, filters: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    projection = {"data": 0}
    cursor = db[DELIVERIES].find(filters, projection=projection).sort("created_at", -1).limit(limit)
    return await cursor.to_list()


async def requeue(db: AsyncDatabase, key: str) -> bool:
    """A failed delivery queued again, in a batch of its own (its old batch may be gone or held)."""
    doc = await db[DELIVERIES].find_one({"_id": key}, projection={"channel": 1, "status": 1})
    if doc is None or doc["status"] != "failed":
        return False
    batch_id = _new_batch_id()
    until = now_utc() + timedelta(seconds=WRITER_HOLD_SECONDS)
    await db[BATCHES].insert_one(_batch_doc(batch_id, doc["channel"], 1, due=until, claim="writer"))
    result = await db[DELIVERIES].update_one(
        {"_id": key, "status": "failed"},
        {"$set": {"status": "queued", "batch": batch_id, "next_attempt_at": now_utc(), "attempts": 0,
                  "last_error": None}},
    )
    if result.modified_count != 1:
        await db[BATCHES].delete_one({"_id": batch_id})
        return False
    await db[BATCHES].update_one({"_id": batch_id}, {"$set": {"claim": None, "claimed_until": None,
                                                              "next_attempt_at": now_utc()}})
    return True


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


def region_followers(db: AsyncDatabase, region: str, batch_size: int) -> Any:
    """A region's confirmed followers, streamed (``batch_size`` per round trip), in ``_id`` order.

    Equality on the (regions, status, _id) index only: SecantusDB plans a range on
    ``_id``, a sort or a third, unindexed field (``topics``) as a collection scan
    plus an in-memory sort (~0.35 s per page of 1 000 at 10 000 followers), while
    this walks the index, whose entries are in ``_id`` order. The caller filters
    on the topic and checks the order (see ``FanOut``)."""
    query = {"regions": region, "status": "confirmed"}
    return db[FOLLOWERS].find(query, projection={"email": 1, "locale": 1, "topics": 1}, batch_size=batch_size)


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
