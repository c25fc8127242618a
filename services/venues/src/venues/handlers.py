"""Use cases: load, decide (domain), save and record events — one transaction each.

Every state change emits its event through the outbox (``tx.emit``) in the same
transaction as the change. ``allow_past`` exists for the seed only (loading a
past season); the HTTP layer never sets it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar

from shared.auth import Principal, issue_token
from shared.contracts.registration import Occupancy
from shared.contracts.venues import (
    SessionAddedV1,
    SessionRemovedV1,
    SessionUpdatedV1,
    Speaker,
    StopAcceptedV1,
    StopArchivedV1,
    StopCancelledV1,
    StopCapacityChangedV1,
    StopHeldV1,
    StopPostponedV1,
    StopProposedV1,
    StopRegistrationClosedV1,
    StopRegistrationOpenedV1,
    StopRejectedV1,
    StopUpdatedV1,
    TerritoryCreatedV1,
    TerritoryUpdatedV1,
    Venue,
)
from shared.errors import Conflict, NotFound, Unauthorized
from shared.uow import Tx

from venues import domain
from venues.accounts import Account, Passwords, normalise_email
from venues.config import Settings
from venues.domain import Action, Session, Stop, Territory
from venues.repository import MongoRepository

T = TypeVar("T")

SIMPLE_TRANSITION_EVENTS = {
    "accept": StopAcceptedV1,
    "open_registration": StopRegistrationOpenedV1,
    "close_registration": StopRegistrationClosedV1,
    "mark_held": StopHeldV1,
    "archive": StopArchivedV1,
}
SYSTEM = Principal(subject="system", role="staff")


class Runner(Protocol):
    async def run(self, work: Callable[[Tx], Awaitable[T]]) -> T: ...


RepositoryFactory = Callable[[Tx | None], MongoRepository]


def _new_id() -> str:
    return str(uuid.uuid4())


class VenuesService:
    def __init__(self, uow: Runner, repositories: RepositoryFactory, *, settings: Settings, signing_key: bytes,
                 passwords: Passwords | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._uow = uow
        self._repo = repositories
        self._settings = settings
        self._signing_key = signing_key
        self._passwords = passwords or Passwords()
        self._now = clock

    # --- accounts -----------------------------------------------------------------------

    async def login(self, email: str, password: str) -> dict[str, Any]:
        account = await self._repo(None).get_account(normalise_email(email))
        # argon2 is slow by design: off the event loop, so other requests keep flowing
        valid = await asyncio.to_thread(self._passwords.verify, account.password_hash if account else None, password)
        if account is None or not valid:
            raise Unauthorized("wrong email or password")
        ttl = self._settings.token_ttl_seconds
        token = issue_token(self._signing_key, subject=account.id, role=account.role,
                            territory_id=account.territory_id, region=account.region,
                            issuer=self._settings.jwt_issuer, audience=self._settings.jwt_audience, ttl_seconds=ttl)
        return {"access_token": token, "token_type": "bearer", "role": account.role,
                "territory_id": account.territory_id, "expires_in": ttl}

    async def ensure_staff(self, email: str, password: str) -> bool:
        """Create the staff account if it is missing (startup); returns whether it was created."""
        email = normalise_email(email)
        if await self._repo(None).get_account(email):
            return False
        password_hash = await asyncio.to_thread(self._passwords.hash, password)
        account = Account(_new_id(), email, "Circuit staff", "staff", password_hash)
        await self._uow.run(lambda tx: self._repo(tx).add_account(account))
        return True

    async def add_host(self, principal: Principal, territory_id: str, *, email: str, password: str,
                       name: str) -> Account:
        principal.require_staff()
        password_hash = await asyncio.to_thread(self._passwords.hash, password)  # slow: outside the transaction

        async def work(tx: Tx) -> Account:
            repo = self._repo(tx)
            territory = await self._territory(repo, territory_id)
            account = Account(_new_id(), normalise_email(email), name, "host", password_hash,
                              territory_id=territory.id, region=territory.region)
            await repo.add_account(account)
            return account

        return await self._uow.run(work)

    # --- territories --------------------------------------------------------------------

    async def create_territory(self, principal: Principal, *, name: str, kind: str, region: str,
                               contact_email: str = "", contact_name: str = "") -> Territory:
        principal.require_staff()
        domain.check_region(region)
        territory = Territory(_new_id(), name, kind, region, contact_email, contact_name)  # type: ignore[arg-type]

        async def work(tx: Tx) -> Territory:
            await self._repo(tx).add_territory(territory)
            tx.emit(TerritoryCreatedV1(territory_id=territory.id, territory=territory.snapshot()))
            return territory

        return await self._uow.run(work)

    async def update_territory(self, principal: Principal, territory_id: str, changes: dict[str, Any]) -> Territory:
        """Name, kind and contact; the region is fixed (its stops and hosts are bound to it)."""
        principal.require_staff()

        async def work(tx: Tx) -> Territory:
            repo = self._repo(tx)
            territory = await self._territory(repo, territory_id)
            changed = [name for name, value in changes.items() if getattr(territory, name) != value]
            if changed:
                territory = replace(territory, **changes)
                await repo.save_territory(territory)
                tx.emit(TerritoryUpdatedV1(territory_id=territory.id, territory=territory.snapshot(), changed=changed))
            return territory

        return await self._uow.run(work)

    async def list_territories(self) -> list[Territory]:
        return await self._repo(None).list_territories()

    async def get_territory(self, territory_id: str) -> Territory:
        return await self._territory(self._repo(None), territory_id)

    async def find_territory(self, name: str) -> Territory | None:
        return await self._repo(None).find_territory_by_name(name)

    @staticmethod
    async def _territory(repo: MongoRepository, territory_id: str) -> Territory:
        territory = await repo.get_territory(territory_id)
        if territory is None:
            raise NotFound(f"territory {territory_id} not found")
        return territory

    # --- stops --------------------------------------------------------------------------

    async def propose_stop(self, principal: Principal, *, season: int, region: str, territory_id: str, city: str,
                           venue: Venue | dict[str, Any], date: date, starts_at: str | datetime,
                           ends_at: str | datetime, theme: str, capacity: int, offer_validity_hours: int = 48,
                           allow_past: bool = False) -> Stop:
        principal.require_territory(territory_id)
        domain.check_region(region)
        domain.check_schedule(date, season, self._now(), allow_past=allow_past)
        start = domain.resolve_time(date, starts_at, "starts_at")
        end = domain.resolve_time(date, ends_at, "ends_at")
        domain.check_hours(start, end)

        async def work(tx: Tx) -> Stop:
            repo = self._repo(tx)
            territory = await self._territory(repo, territory_id)
            domain.check_stop_territory(territory, region)
            stop = Stop(_new_id(), season, region, territory.id, territory.name, city, Venue.model_validate(venue),
                        date, start, end, theme, capacity, offer_validity_hours=offer_validity_hours)
            existing = await repo.active_stop(season, region)
            if existing:  # the unique partial index settles races; this read names the culprit
                raise Conflict(f"region {region} already has an active stop in season {season} ({existing.city})",
                               code="region_season_taken", fields={"region": "already has a stop this season"},
                               stop_id=existing.id)
            await repo.add_stop(stop)
            tx.emit(StopProposedV1(stop_id=stop.id, stop=stop.snapshot()))
            return stop

        return await self._uow.run(work)

    async def get_stop(self, stop_id: str) -> Stop:
        return await self._stop(self._repo(None), stop_id)

    async def list_stops(self, **filters: Any) -> list[Stop]:
        return await self._repo(None).list_stops(**filters)

    async def active_stop(self, season: int, region: str) -> Stop | None:
        return await self._repo(None).active_stop(season, region)

    @staticmethod
    async def _stop(repo: MongoRepository, stop_id: str) -> Stop:
        stop = await repo.get_stop(stop_id)
        if stop is None:
            raise NotFound(f"stop {stop_id} not found")
        return stop

    async def _change(self, principal: Principal, stop_id: str, action: Action | str,
                      decide: Callable[[Tx, MongoRepository, Stop], Awaitable[T]]) -> T:
        """Load the stop, authorise ``action`` on it, let ``decide`` change it and emit, then save."""

        async def work(tx: Tx) -> T:
            repo = self._repo(tx)
            stop = await self._stop(repo, stop_id)
            domain.authorize(principal, stop, action)  # type: ignore[arg-type]
            result = await decide(tx, repo, stop)
            await repo.save_stop(stop)
            return result

        return await self._uow.run(work)

    async def act(self, principal: Principal, stop_id: str, action: Action, *, reason: str = "") -> Stop:
        """accept, reject, open/close registration, mark held, archive, cancel."""

        async def decide(tx: Tx, _: MongoRepository, stop: Stop) -> Stop:
            now = self._now()
            if action == "reject":
                domain.reject(stop, reason, now)
                tx.emit(StopRejectedV1(stop_id=stop.id, stop=stop.snapshot(), reason=reason))
            elif action == "cancel":
                domain.cancel(stop, reason, now)
                tx.emit(StopCancelledV1(stop_id=stop.id, stop=stop.snapshot(), reason=reason))
            else:
                domain.transition(stop, action, now)
                tx.emit(SIMPLE_TRANSITION_EVENTS[action](stop_id=stop.id, stop=stop.snapshot()))
            return stop

        return await self._change(principal, stop_id, action, decide)

    async def postpone(self, principal: Principal, stop_id: str, *, date: date, starts_at: str | datetime,
                       ends_at: str | datetime) -> Stop:
        start = domain.resolve_time(date, starts_at, "starts_at")
        end = domain.resolve_time(date, ends_at, "ends_at")

        async def decide(tx: Tx, _: MongoRepository, stop: Stop) -> Stop:
            before = domain.postpone(stop, date, start, end, self._now())
            tx.emit(StopPostponedV1(stop_id=stop.id, stop=stop.snapshot(), previous_date=before.date,
                                    previous_starts_at=before.starts_at, previous_ends_at=before.ends_at))
            for session in stop.sessions:
                tx.emit(SessionUpdatedV1(stop_id=stop.id, session=session.snapshot(stop.id),
                                         changed=["starts_at", "ends_at"]))
            return stop

        return await self._change(principal, stop_id, "postpone", decide)

    async def edit_stop(self, principal: Principal, stop_id: str, changes: dict[str, Any]) -> Stop:
        async def decide(tx: Tx, repo: MongoRepository, stop: Stop) -> Stop:
            resolved = dict(changes)
            for name in ("starts_at", "ends_at"):
                if name in resolved:
                    resolved[name] = domain.resolve_time(stop.date, resolved[name], name)
            if "venue" in resolved:
                resolved["venue"] = Venue.model_validate(resolved["venue"])
            occupancy = await repo.get_occupancy(stop.id)
            changed, previous_capacity = domain.edit(stop, resolved, occupancy.confirmed if occupancy else 0)
            if previous_capacity is not None:
                tx.emit(StopCapacityChangedV1(stop_id=stop.id, stop=stop.snapshot(),
                                              previous_capacity=previous_capacity))
            if changed:
                tx.emit(StopUpdatedV1(stop_id=stop.id, stop=stop.snapshot(), changed=changed))
            return stop

        return await self._change(principal, stop_id, "edit", decide)

    # --- sessions -----------------------------------------------------------------------

    async def add_session(self, principal: Principal, stop_id: str, *, kind: str, title: str,
                          starts_at: str | datetime, ends_at: str | datetime, room: str = "",
                          speakers: Sequence[Any] = ()) -> Session:
        async def decide(tx: Tx, _: MongoRepository, stop: Stop) -> Session:
            session = Session(
                _new_id(), kind, title,  # type: ignore[arg-type]
                domain.resolve_time(stop.date, starts_at, "starts_at"),
                domain.resolve_time(stop.date, ends_at, "ends_at"),
                room, [Speaker.model_validate(s) for s in speakers],
            )
            domain.add_session(stop, session)
            tx.emit(SessionAddedV1(stop_id=stop.id, session=session.snapshot(stop.id)))
            return session

        return await self._change(principal, stop_id, "edit", decide)

    async def update_session(self, principal: Principal, stop_id: str, session_id: str,
                             changes: dict[str, Any]) -> Session:
        async def decide(tx: Tx, _: MongoRepository, stop: Stop) -> Session:
            resolved = dict(changes)
            for name in ("starts_at", "ends_at"):
                if name in resolved:
                    resolved[name] = domain.resolve_time(stop.date, resolved[name], name)
            if "speakers" in resolved:
                resolved["speakers"] = [Speaker.model_validate(s) for s in resolved["speakers"]]
            session, changed = domain.update_session(stop, session_id, resolved)
            if changed:
                tx.emit(SessionUpdatedV1(stop_id=stop.id, session=session.snapshot(stop.id), changed=changed))
            return session

        return await self._change(principal, stop_id, "edit", decide)

    async def remove_session(self, principal: Principal, stop_id: str, session_id: str) -> None:
        async def decide(tx: Tx, _: MongoRepository, stop: Stop) -> None:
            removed = domain.remove_session(stop, session_id)
            tx.emit(SessionRemovedV1(stop_id=stop.id, session=removed.snapshot(stop.id)))

        await self._change(principal, stop_id, "edit", decide)

    # --- read model fed by registration events ------------------------------------------

    async def record_occupancy(self, tx: Tx, stop_id: str, occupancy: Occupancy, as_of: datetime) -> bool:
        return await self._repo(tx).put_occupancy(stop_id, occupancy, as_of)

    async def occupancy(self, stop_id: str) -> Occupancy | None:
        return await self._repo(None).get_occupancy(stop_id)
