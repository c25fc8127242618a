"""MongoDB adapter: the stop read model with its counters, registrations, idempotency
records and check-in scans. Every write runs inside the caller's unit of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.contracts.venues import StopSnapshot
from shared.mongo import IndexSpec
from shared.uow import Tx

from registration.domain import ACTIVE, SIGNUP_STOP_STATUS

STOPS = "stops"
REGISTRATIONS = "registrations"
IDEMPOTENCY = "idempotency_keys"
CHECKIN_SCANS = "checkin_scans"

INDEXES = [
    # One active registration per email per stop: the database, not a read-then-write, enforces it.
    IndexSpec(REGISTRATIONS, [("stop_id", 1), ("email", 1)],
              {"unique": True, "partialFilterExpression": {"active": True}, "name": "one_active_per_email"}),
    IndexSpec(REGISTRATIONS, [("check_in_code", 1)], {"unique": True}),
    IndexSpec(REGISTRATIONS, [("stop_id", 1), ("status", 1), ("waitlist_seq", 1)]),
    IndexSpec(IDEMPOTENCY, [("created_at", 1)], {"expireAfterSeconds": 30 * 24 * 3600}),
]

# A place is free when confirmed + offered < capacity; evaluated by the server inside the update.
_HAS_FREE_PLACE = {"$expr": {"$lt": [{"$add": ["$confirmed", "$offered"]}, "$capacity"]}}
_COUNTERS = ("confirmed", "offered", "waitlisted")


def _open(stop_id: str, now: datetime) -> dict[str, Any]:
    """The stop takes sign-ups (see ``StopView.signup_refusal``, which explains a refusal)."""
    return {"_id": stop_id, "status": SIGNUP_STOP_STATUS, "starts_at": {"$gt": now}}


class Repo:
    """Data access bound to one transaction (or to none, for plain reads)."""

    def __init__(self, db: AsyncDatabase, session: AsyncClientSession | None = None):
        self.db = db
        self.session = session
        self.stops = db[STOPS]
        self.registrations = db[REGISTRATIONS]

    @classmethod
    def of(cls, tx: Tx) -> "Repo":
        return cls(tx.db, tx.session)

    # -- stops -----------------------------------------------------------------------------
    async def stop(self, stop_id: str) -> dict[str, Any] | None:
        return await self.stops.find_one({"_id": stop_id}, session=self.session)

    async def apply_snapshot(self, snap: StopSnapshot) -> dict[str, Any]:
        """Upsert the read model from a venues snapshot; counters start at zero."""
        fields = {
            "status": snap.status, "capacity": snap.capacity, "territory_id": snap.territory_id,
            "region": snap.region, "city": snap.city, "theme": snap.theme, "date": snap.date.isoformat(),
            "starts_at": snap.starts_at, "ends_at": snap.ends_at, "timezone": snap.timezone,
            "offer_validity_hours": snap.offer_validity_hours, "sequence": snap.sequence,
        }
        return await self.stops.find_one_and_update(
            {"_id": snap.stop_id},
            {"$set": fields, "$setOnInsert": {**dict.fromkeys(_COUNTERS, 0), "waitlist_seq": 0, "sold_out": False}},
            upsert=True, return_document=ReturnDocument.AFTER, session=self.session,
        )

    async def take_place(self, stop_id: str, now: datetime) -> dict[str, Any] | None:
        """Confirm one more person if the stop is open, a place is free and nobody waits before them."""
        return await self.stops.find_one_and_update(
            {**_open(stop_id, now), "waitlisted": 0, **_HAS_FREE_PLACE},
            {"$inc": {"confirmed": 1}}, return_document=ReturnDocument.AFTER, session=self.session,
        )

    async def join_waitlist(self, stop_id: str, now: datetime) -> dict[str, Any] | None:
        return await self.stops.find_one_and_update(
            _open(stop_id, now),
            {"$inc": {"waitlisted": 1, "waitlist_seq": 1}}, return_document=ReturnDocument.AFTER, session=self.session,
        )

    async def offer_place(self, stop_id: str) -> dict[str, Any] | None:
        """Move one waitlisted person to an offer if a place is free; None when full."""
        return await self.stops.find_one_and_update(
            {"_id": stop_id, "waitlisted": {"$gt": 0}, **_HAS_FREE_PLACE},
            {"$inc": {"waitlisted": -1, "offered": 1}}, return_document=ReturnDocument.AFTER, session=self.session,
        )

    async def move_counters(self, stop_id: str, **deltas: int) -> dict[str, Any]:
        return await self.stops.find_one_and_update(
            {"_id": stop_id}, {"$inc": deltas}, return_document=ReturnDocument.AFTER, session=self.session,
        )

    async def reset_counters(self, stop_id: str) -> dict[str, Any]:
        return await self.stops.find_one_and_update(
            {"_id": stop_id}, {"$set": dict.fromkeys(_COUNTERS, 0)},
            return_document=ReturnDocument.AFTER, session=self.session,
        )

    async def set_sold_out(self, stop_id: str, sold_out: bool) -> None:
        await self.stops.update_one({"_id": stop_id}, {"$set": {"sold_out": sold_out}}, session=self.session)

    # -- registrations ---------------------------------------------------------------------
    async def registration(self, registration_id: str) -> dict[str, Any] | None:
        return await self.registrations.find_one({"_id": registration_id}, session=self.session)

    async def by_code(self, code: str) -> dict[str, Any] | None:
        return await self.registrations.find_one({"check_in_code": code}, session=self.session)

    async def insert(self, doc: dict[str, Any]) -> None:
        doc["active"] = doc["status"] in ACTIVE
        await self.registrations.insert_one(doc, session=self.session)

    async def transition(self, registration_id: str, expected: str | set[str], changes: dict[str, Any],
                         unset: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """Set ``changes`` if the registration is still in ``expected``; the updated doc or None."""
        statuses = [expected] if isinstance(expected, str) else sorted(expected)
        update: dict[str, Any] = {"$set": dict(changes)}
        if "status" in changes:
            update["$set"]["active"] = changes["status"] in ACTIVE
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        return await self.registrations.find_one_and_update(
            {"_id": registration_id, "status": {"$in": statuses}}, update,
            return_document=ReturnDocument.AFTER, session=self.session,
        )

    async def set_fields(self, registration_id: str, changes: dict[str, Any], unset: tuple[str, ...] = ()) -> None:
        update: dict[str, Any] = {"$set": changes} if changes else {}
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        await self.registrations.update_one({"_id": registration_id}, update, session=self.session)

    async def unlink_transfer(self, reg: dict[str, Any]) -> None:
        """Forget a pending transfer that ``reg`` is either end of."""
        if reg.get("transferred_from"):
            await self.registrations.update_one({"_id": reg["transferred_from"], "transfer_to": reg["_id"]},
                                                {"$unset": {"transfer_to": ""}}, session=self.session)
        if reg.get("transfer_to"):
            await self.set_fields(reg["transfer_to"], {}, unset=("transferred_from",))

    async def next_waitlisted(self, stop_id: str) -> dict[str, Any] | None:
        return await self.registrations.find_one(
            {"stop_id": stop_id, "status": "waitlisted"}, sort=[("waitlist_seq", 1)], session=self.session)

    async def waitlist_position(self, stop_id: str, waitlist_seq: int) -> int:
        ahead = await self.registrations.count_documents(
            {"stop_id": stop_id, "status": "waitlisted", "waitlist_seq": {"$lt": waitlist_seq}}, session=self.session)
        return ahead + 1

    async def for_stop(self, stop_id: str, statuses: set[str] | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"stop_id": stop_id}
        if statuses is not None:
            query["status"] = {"$in": sorted(statuses)}
        return await self.registrations.find(query, session=self.session).sort("created_at", 1).to_list()

    async def bulk_set(self, ids: list[str], changes: dict[str, Any]) -> None:
        if ids:
            await self.registrations.update_many({"_id": {"$in": ids}}, {"$set": changes}, session=self.session)

    # -- idempotency and scans -------------------------------------------------------------
    async def idempotent_answer(self, key: str) -> dict[str, Any] | None:
        return await self.db[IDEMPOTENCY].find_one({"_id": key}, session=self.session)

    async def save_answer(self, key: str, fingerprint: str, status: int, body: dict[str, Any],
                          now: datetime) -> None:
        await self.db[IDEMPOTENCY].insert_one(
            {"_id": key, "fingerprint": fingerprint, "status": status, "body": body, "created_at": now},
            session=self.session)

    async def scan(self, scan_id: str) -> dict[str, Any] | None:
        return await self.db[CHECKIN_SCANS].find_one({"_id": scan_id}, session=self.session)

    async def save_scan(self, scan_id: str, answer: dict[str, Any], now: datetime) -> None:
        await self.db[CHECKIN_SCANS].insert_one({"_id": scan_id, "answer": answer, "created_at": now},
                                                session=self.session)
