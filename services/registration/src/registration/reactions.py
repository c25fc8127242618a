"""How registrations follow the stop: venues events and the durable timers (offer expiry, no-shows)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.contracts.base import CloudEventHeaders
from shared.contracts.registration import NoShowV1, OfferExpiredV1, RegistrationCancelledV1
from shared.contracts.venues import StopCancelledV1, StopHeldV1, StopPostponedV1, _StopEvent
from shared.uow import Tx

from registration.domain import ACTIVE
from registration.handlers import Clock, utcnow
from registration.places import NO_SHOW, OFFER_EXPIRY, Places, offer_timer_id
from registration.repository import Repo


class StopReactions:
    def __init__(self, places: Places, no_show_grace_minutes: int, clock: Clock = utcnow):
        self.places = places
        self.grace = timedelta(minutes=no_show_grace_minutes)
        self.clock = clock

    async def on_stop_event(self, event: _StopEvent, tx: Tx, _: CloudEventHeaders | None = None) -> None:
        """Every stop event refreshes the read model; a few also change registrations."""
        repo, now = Repo.of(tx), self.clock()
        stop_doc = await repo.apply_snapshot(event.stop)
        if isinstance(event, StopCancelledV1):
            stop_doc = await self._cancel_everyone(tx, repo, stop_doc, event.reason)
        elif isinstance(event, StopPostponedV1):
            await self._date_changed(tx, repo, stop_doc)
        elif isinstance(event, StopHeldV1):
            await tx.schedule(f"no_show:{event.stop_id}", NO_SHOW, now + self.grace, {"stop_id": event.stop_id})
        # A capacity rise (or a stop reopening) frees places: the waitlist gets them now.
        await self.places.settle(tx, repo, stop_doc, now)

    async def _cancel_everyone(self, tx: Tx, repo: Repo, stop_doc: dict[str, Any], reason: str) -> dict[str, Any]:
        regs = await repo.for_stop(stop_doc["_id"], set(ACTIVE))
        now = self.clock()
        changes = {"status": "cancelled", "active": False, "cancelled_by": "organiser", "cancel_reason": reason,
                   "cancelled_at": now, "updated_at": now}
        await repo.bulk_set([r["_id"] for r in regs], changes)
        stop_doc = await repo.reset_counters(stop_doc["_id"])
        for reg in regs:
            if reg["status"] == "offered":
                await tx.cancel_timer(offer_timer_id(reg["_id"]))
            await repo.unlink_transfer(reg)
            tx.emit(self.places.event(RegistrationCancelledV1, {**reg, **changes}, stop_doc, by="organiser",
                                      reason=reason))
        return stop_doc

    async def _date_changed(self, tx: Tx, repo: Repo, stop_doc: dict[str, Any]) -> None:
        """Registrations stand; open offers must still end before the new start."""
        regs = await repo.for_stop(stop_doc["_id"], set(ACTIVE))
        await repo.bulk_set([r["_id"] for r in regs], {"date_changed": True})
        starts_at = stop_doc["starts_at"]
        for reg in regs:
            if reg["status"] == "offered" and reg["offer_expires_at"] > starts_at:
                await repo.set_fields(reg["_id"], {"offer_expires_at": starts_at})
                await tx.schedule(offer_timer_id(reg["_id"]), OFFER_EXPIRY, starts_at, {"registration_id": reg["_id"]})

    async def on_offer_expired(self, tx: Tx, payload: dict[str, Any]) -> None:
        repo, now = Repo.of(tx), self.clock()
        before = await repo.registration(payload["registration_id"])
        if before is None or before["status"] != "offered":
            return  # accepted, declined or cancelled in the meantime
        reg = await repo.transition(before["_id"], "offered", {
            "status": "cancelled", "cancelled_by": "system", "cancel_reason": "offer_expired",
            "cancelled_at": now, "updated_at": now})
        stop_doc = await self.places.vacate(tx, repo, before)
        tx.emit(self.places.event(OfferExpiredV1, reg, stop_doc))
        await self.places.settle(tx, repo, stop_doc, now)

    async def on_no_show_due(self, tx: Tx, payload: dict[str, Any]) -> None:
        repo = Repo.of(tx)
        absent = await repo.for_stop(payload["stop_id"], {"confirmed"})
        await repo.bulk_set([r["_id"] for r in absent], {"status": "no_show", "updated_at": self.clock()})
        stop_doc = await repo.stop(payload["stop_id"])
        for reg in absent:
            tx.emit(self.places.event(NoShowV1, {**reg, "status": "no_show"}, stop_doc))
