"""The place engine: every change of a stop's counters goes through here, inside the
caller's transaction, so that a freed place is offered to the next person at once and
every event carries the occupancy right after its change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.contracts.registration import (
    OfferMadeV1,
    StopPlacesAvailableV1,
    StopSoldOutV1,
    _RegistrationEvent,
)
from shared.uow import Tx

from registration.domain import HOLDS_PLACE, OFFERING_STOP_STATUSES, StopView, offer_expiry
from registration.links import Links
from registration.repository import Repo

OFFER_EXPIRY = "offer_expiry"
NO_SHOW = "no_show"

# The counter a registration occupies, by status.
_COUNTER_OF = {"offered": "offered", "waitlisted": "waitlisted", **{s: "confirmed" for s in HOLDS_PLACE}}


def offer_timer_id(registration_id: str) -> str:
    return f"offer:{registration_id}"


class Places:
    def __init__(self, links: Links):
        self.links = links

    def event(self, cls: type[_RegistrationEvent], reg: dict[str, Any], stop_doc: dict[str, Any],
              **extra: Any) -> _RegistrationEvent:
        return cls(
            registration_id=reg["_id"], stop_id=reg["stop_id"], email=reg["email"],
            first_name=reg["first_name"], last_name=reg["last_name"], locale=reg.get("locale", "fr"),
            status=reg["status"], manage_url=self.links.manage_url(reg["_id"], stop_doc["ends_at"]),
            occupancy=StopView.from_doc(stop_doc).occupancy, **extra,
        )

    async def vacate(self, tx: Tx, repo: Repo, reg_before: dict[str, Any], *, unlink: bool = True) -> dict[str, Any]:
        """Give back what ``reg_before`` occupied (place, offer or waitlist slot); the stop after.

        ``unlink`` drops a pending transfer so nobody is moved on the strength of a dead registration.
        """
        counter = _COUNTER_OF.get(reg_before["status"])
        doc = (await repo.move_counters(reg_before["stop_id"], **{counter: -1}) if counter
               else await repo.stop(reg_before["stop_id"]))
        if reg_before["status"] == "offered":
            await tx.cancel_timer(offer_timer_id(reg_before["_id"]))
        if unlink:
            await repo.unlink_transfer(reg_before)
        return doc

    async def settle(self, tx: Tx, repo: Repo, stop_doc: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Offer every free place to the waitlist, then announce a sold-out flip; the stop after."""
        stop_doc = await self._fill(tx, repo, stop_doc, now)
        await self._announce(tx, repo, stop_doc)
        return stop_doc

    async def _fill(self, tx: Tx, repo: Repo, stop_doc: dict[str, Any], now: datetime) -> dict[str, Any]:
        stop = StopView.from_doc(stop_doc)
        if not stop.offers_places(now):
            return stop_doc
        expires_at = offer_expiry(now, stop.offer_validity_hours, stop.starts_at)
        while stop.available > 0 and stop.waitlisted > 0:
            nxt = await repo.next_waitlisted(stop.stop_id)
            if nxt is None:
                break
            after = await repo.offer_place(stop.stop_id)
            if after is None:
                break
            reg = await repo.transition(nxt["_id"], "waitlisted", {
                "status": "offered", "offered_at": now, "offer_expires_at": expires_at, "updated_at": now})
            await tx.schedule(offer_timer_id(reg["_id"]), OFFER_EXPIRY, expires_at, {"registration_id": reg["_id"]})
            accept_url, decline_url = self.links.offer_urls(reg["_id"], expires_at)
            tx.emit(self.event(OfferMadeV1, reg, after, expires_at=expires_at, accept_url=accept_url,
                               decline_url=decline_url))
            stop_doc, stop = after, StopView.from_doc(after)
        return stop_doc

    async def _announce(self, tx: Tx, repo: Repo, stop_doc: dict[str, Any]) -> None:
        stop = StopView.from_doc(stop_doc)
        if stop.status not in OFFERING_STOP_STATUSES:
            return
        sold_out = stop.available == 0
        if sold_out != stop.sold_out:
            await repo.set_sold_out(stop.stop_id, sold_out)
            cls: Callable[..., Any] = StopSoldOutV1 if sold_out else StopPlacesAvailableV1
            tx.emit(cls(stop_id=stop.stop_id, occupancy=stop.occupancy))
