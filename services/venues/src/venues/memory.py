"""In-memory stand-ins for the unit of work and the repository (service-layer and
contract tests run the real handlers on them, with no database)."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from shared.contracts.base import Event
from shared.contracts.registration import Occupancy
from shared.errors import Conflict
from shared.uow import Tx

from venues.accounts import Account
from venues.domain import Stop, Territory

T = TypeVar("T")


@dataclass
class MemoryState:
    territories: dict[str, Territory] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    stops: dict[str, Stop] = field(default_factory=dict)
    occupancy: dict[str, tuple[Occupancy, datetime]] = field(default_factory=dict)


class MemoryUnitOfWork:
    """Commits the state and the emitted events together, or neither (like the Mongo one)."""

    def __init__(self, state: MemoryState):
        self.state = state
        self.committed: list[Event] = []

    async def run(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        before = copy.deepcopy(self.state)
        tx = Tx(session=None, db=None, source="venues")  # type: ignore[arg-type]
        try:
            result = await work(tx)
        except BaseException:
            self.state.__dict__.update(before.__dict__)
            raise
        self.committed.extend(tx.events)
        return result


class MemoryRepository:
    """The MongoRepository methods over a MemoryState (copies in and out, like documents)."""

    def __init__(self, state: MemoryState):
        self._s = state

    async def get_territory(self, territory_id: str) -> Territory | None:
        return copy.deepcopy(self._s.territories.get(territory_id))

    async def find_territory_by_name(self, name: str) -> Territory | None:
        key = " ".join(name.casefold().split())
        found = [t for t in self._s.territories.values() if " ".join(t.name.casefold().split()) == key]
        return copy.deepcopy(found[0]) if found else None

    async def add_territory(self, territory: Territory) -> None:
        if await self.find_territory_by_name(territory.name):
            raise Conflict(f"a territory named {territory.name!r} already exists", code="duplicate_territory")
        self._s.territories[territory.id] = copy.deepcopy(territory)

    async def save_territory(self, territory: Territory) -> None:
        same_name = await self.find_territory_by_name(territory.name)
        if same_name and same_name.id != territory.id:
            raise Conflict(f"a territory named {territory.name!r} already exists", code="duplicate_territory")
        self._s.territories[territory.id] = copy.deepcopy(territory)

    async def list_territories(self) -> list[Territory]:
        return sorted(copy.deepcopy(list(self._s.territories.values())), key=lambda t: t.name.casefold())

    async def get_account(self, email: str) -> Account | None:
        return copy.deepcopy(next((a for a in self._s.accounts.values() if a.email == email), None))

    async def add_account(self, account: Account) -> None:
        if await self.get_account(account.email):
            raise Conflict("an account with this email already exists", code="duplicate_account")
        self._s.accounts[account.id] = copy.deepcopy(account)

    async def get_stop(self, stop_id: str) -> Stop | None:
        return copy.deepcopy(self._s.stops.get(stop_id))

    async def active_stop(self, season: int, region: str) -> Stop | None:
        found = [s for s in self._s.stops.values() if s.season == season and s.region == region and s.active]
        return copy.deepcopy(found[0]) if found else None

    async def add_stop(self, stop: Stop) -> None:
        if await self.active_stop(stop.season, stop.region):
            raise Conflict("region already has an active stop this season", code="region_season_taken")
        self._s.stops[stop.id] = copy.deepcopy(stop)

    async def save_stop(self, stop: Stop) -> None:
        self._s.stops[stop.id] = copy.deepcopy(stop)

    async def list_stops(self, *, season: int | None = None, region: str | None = None, status: str | None = None,
                         territory_id: str | None = None, exclude: frozenset[str] = frozenset()) -> list[Stop]:
        wanted: dict[str, Any] = {"season": season, "region": region, "status": status, "territory_id": territory_id}
        stops = [s for s in self._s.stops.values()
                 if all(v is None or getattr(s, k) == v for k, v in wanted.items()) and s.status not in exclude]
        return copy.deepcopy(sorted(stops, key=lambda s: (s.date, s.region)))

    async def get_occupancy(self, stop_id: str) -> Occupancy | None:
        entry = self._s.occupancy.get(stop_id)
        return entry[0] if entry else None

    async def put_occupancy(self, stop_id: str, occupancy: Occupancy, as_of: datetime) -> bool:
        current = self._s.occupancy.get(stop_id)
        if current and current[1] > as_of:
            return False
        self._s.occupancy[stop_id] = (occupancy, as_of)
        return True
