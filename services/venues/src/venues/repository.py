"""MongoDB adapter: territories, accounts, stops (sessions embedded) and the occupancy read model.

Every method runs in the caller's transaction when given its session. The
one-active-stop-per-region-per-season rule is also a unique partial index, so
two concurrent proposals cannot both commit.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.contracts.registration import Occupancy
from shared.contracts.venues import Speaker, Venue
from shared.errors import Conflict
from shared.mongo import IndexSpec

from venues.accounts import Account
from venues.domain import Session, Stop, Territory

TERRITORIES, ACCOUNTS, STOPS, OCCUPANCY = "territories", "accounts", "stops", "occupancy"
ONE_ACTIVE_STOP = "one_active_stop_per_region_season"

INDEXES = [
    IndexSpec(TERRITORIES, [("name_key", 1)], {"unique": True}),
    IndexSpec(ACCOUNTS, [("email", 1)], {"unique": True}),
    IndexSpec(STOPS, [("season", 1), ("region", 1)],
              {"unique": True, "name": ONE_ACTIVE_STOP, "partialFilterExpression": {"active": True}}),
    IndexSpec(STOPS, [("season", 1), ("date", 1)]),
    IndexSpec(STOPS, [("territory_id", 1), ("date", 1)]),
]


def _name_key(name: str) -> str:
    return " ".join(name.casefold().split())


class MongoRepository:
    def __init__(self, db: AsyncDatabase, session: AsyncClientSession | None = None):
        self._db = db
        self._s = session

    # territories
    async def get_territory(self, territory_id: str) -> Territory | None:
        doc = await self._db[TERRITORIES].find_one({"_id": territory_id}, session=self._s)
        return _territory(doc) if doc else None

    async def find_territory_by_name(self, name: str) -> Territory | None:
        doc = await self._db[TERRITORIES].find_one({"name_key": _name_key(name)}, session=self._s)
        return _territory(doc) if doc else None

    async def add_territory(self, territory: Territory) -> None:
        doc = {"_id": territory.id, "name_key": _name_key(territory.name), **_plain(territory)}
        try:
            await self._db[TERRITORIES].insert_one(doc, session=self._s)
        except DuplicateKeyError:
            raise Conflict(f"a territory named {territory.name!r} already exists", code="duplicate_territory") from None

    async def save_territory(self, territory: Territory) -> None:
        doc = {"_id": territory.id, "name_key": _name_key(territory.name), **_plain(territory)}
        try:
            await self._db[TERRITORIES].replace_one({"_id": territory.id}, doc, session=self._s)
        except DuplicateKeyError:
            raise Conflict(f"a territory named {territory.name!r} already exists", code="duplicate_territory") from None

    async def list_territories(self) -> list[Territory]:
        return [_territory(d) async for d in self._db[TERRITORIES].find({}, session=self._s).sort("name_key", 1)]

    # accounts
    async def get_account(self, email: str) -> Account | None:
        doc = await self._db[ACCOUNTS].find_one({"email": email}, session=self._s)
        return _account(doc) if doc else None

    async def add_account(self, account: Account) -> None:
        try:
            await self._db[ACCOUNTS].insert_one({"_id": account.id, **_plain(account)}, session=self._s)
        except DuplicateKeyError:
            raise Conflict("an account with this email already exists", code="duplicate_account",
                           fields={"email": "already used"}) from None

    # stops
    async def get_stop(self, stop_id: str) -> Stop | None:
        doc = await self._db[STOPS].find_one({"_id": stop_id}, session=self._s)
        return _stop(doc) if doc else None

    async def active_stop(self, season: int, region: str) -> Stop | None:
        doc = await self._db[STOPS].find_one({"season": season, "region": region, "active": True}, session=self._s)
        return _stop(doc) if doc else None

    async def add_stop(self, stop: Stop) -> None:
        try:
            await self._db[STOPS].insert_one(_stop_doc(stop), session=self._s)
        except DuplicateKeyError:
            raise Conflict(f"region {stop.region} already has an active stop in season {stop.season}",
                           code="region_season_taken", fields={"region": "already has a stop this season"}) from None

    async def save_stop(self, stop: Stop) -> None:
        await self._db[STOPS].replace_one({"_id": stop.id}, _stop_doc(stop), session=self._s)

    async def list_stops(self, *, season: int | None = None, region: str | None = None, status: str | None = None,
                         territory_id: str | None = None, exclude: frozenset[str] = frozenset()) -> list[Stop]:
        query: dict[str, Any] = {k: v for k, v in
                                 {"season": season, "region": region, "territory_id": territory_id}.items() if v}
        if status:
            query["status"] = status
        elif exclude:
            query["status"] = {"$nin": sorted(exclude)}
        cursor = self._db[STOPS].find(query, session=self._s).sort([("date", 1), ("region", 1)])
        return [_stop(d) async for d in cursor]

    # occupancy read model (from registration events)
    async def get_occupancy(self, stop_id: str) -> Occupancy | None:
        doc = await self._db[OCCUPANCY].find_one({"_id": stop_id}, session=self._s)
        return Occupancy.model_validate(doc) if doc else None

    async def put_occupancy(self, stop_id: str, occupancy: Occupancy, as_of: datetime) -> bool:
        """Keep the newest figures; an older event (a replayed dead letter) changes nothing."""
        current = await self._db[OCCUPANCY].find_one({"_id": stop_id}, session=self._s)
        if current and current["as_of"] > as_of:
            return False
        await self._db[OCCUPANCY].replace_one(
            {"_id": stop_id}, {**occupancy.model_dump(), "as_of": as_of}, upsert=True, session=self._s
        )
        return True


def _plain(obj: Territory | Account) -> dict[str, Any]:
    return {k: v for k, v in vars(obj).items() if k != "id"}


def _territory(doc: dict[str, Any]) -> Territory:
    return Territory(id=doc["_id"], name=doc["name"], kind=doc["kind"], region=doc["region"],
                     contact_email=doc.get("contact_email", ""), contact_name=doc.get("contact_name", ""))


def _account(doc: dict[str, Any]) -> Account:
    return Account(id=doc["_id"], email=doc["email"], name=doc["name"], role=doc["role"],
                   password_hash=doc["password_hash"], territory_id=doc.get("territory_id"), region=doc.get("region"))


def _stop_doc(stop: Stop) -> dict[str, Any]:
    return {
        "_id": stop.id, "season": stop.season, "region": stop.region, "territory_id": stop.territory_id,
        "territory_name": stop.territory_name, "city": stop.city, "venue": stop.venue.model_dump(),
        "date": stop.date.isoformat(), "starts_at": stop.starts_at, "ends_at": stop.ends_at, "theme": stop.theme,
        "capacity": stop.capacity, "status": stop.status, "active": stop.active, "sequence": stop.sequence,
        "offer_validity_hours": stop.offer_validity_hours, "cancel_reason": stop.cancel_reason,
        "reject_reason": stop.reject_reason,
        "sessions": [
            {"id": s.id, "kind": s.kind, "title": s.title, "starts_at": s.starts_at, "ends_at": s.ends_at,
             "room": s.room, "speakers": [sp.model_dump() for sp in s.speakers]}
            for s in stop.sessions
        ],
    }


def _stop(doc: dict[str, Any]) -> Stop:
    return Stop(
        id=doc["_id"], season=doc["season"], region=doc["region"], territory_id=doc["territory_id"],
        territory_name=doc.get("territory_name", ""), city=doc["city"], venue=Venue.model_validate(doc["venue"]),
        date=date.fromisoformat(doc["date"]), starts_at=doc["starts_at"], ends_at=doc["ends_at"], theme=doc["theme"],
        capacity=doc["capacity"], status=doc["status"], sequence=doc.get("sequence", 0),
        offer_validity_hours=doc.get("offer_validity_hours", 48), cancel_reason=doc.get("cancel_reason"),
        reject_reason=doc.get("reject_reason"),
        sessions=[
            Session(id=s["id"], kind=s["kind"], title=s["title"], starts_at=s["starts_at"], ends_at=s["ends_at"],
                    room=s.get("room", ""), speakers=[Speaker.model_validate(sp) for sp in s.get("speakers", [])])
            for s in doc.get("sessions", [])
        ],
    )
