"""What each consumed event means for notifications: read models kept current,
transactional emails queued, reminders planned, partners' webhooks queued.

Every handler runs inside the consumer's transaction (inbox claim included),
so it only writes to MongoDB; the sender loops do the sending."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from notifications import repository as repo
from notifications.config import Settings
from notifications.domain import (ACTIVE_ATTENDEE, WEBHOOK_EVENT_TYPES, locale_of, normalize_email,
                                  notification_key, reminder_due)
from shared.contracts import registration as reg
from shared.contracts import venues
from shared.contracts.base import CloudEventHeaders, Event
from shared.contracts.venues import StopSnapshot
from shared.uow import Tx

REMINDER_TIMER = "reminder"

_KIND_BY_EVENT: dict[type[Event], str] = {
    reg.RegistrationConfirmedV1: "registration_confirmed",
    reg.RegistrationWaitlistedV1: "registration_waitlisted",
    reg.OfferMadeV1: "offer_made",
    reg.OfferExpiredV1: "offer_expired",
    reg.RegistrationCancelledV1: "registration_cancelled",
    reg.RegistrationTransferredV1: "registration_transferred",
}
# Fields of each registration event an email shows, beyond the common ones.
_EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "registration_confirmed": ("check_in_code", "via"),
    "registration_waitlisted": ("position",),
    "offer_made": ("expires_at", "accept_url", "decline_url"),
    "registration_cancelled": ("by", "reason"),
    "registration_transferred": ("to_stop_id", "to_status"),
}


def _reminder_timer_id(registration_id: str) -> str:
    return f"{REMINDER_TIMER}:{registration_id}"


class EventHandlers:
    def __init__(self, settings: Settings):
        self.settings = settings

    # ------------------------------------------------------------ registrations

    async def on_registration(self, event: reg._RegistrationEvent, tx: Tx, ce: CloudEventHeaders) -> None:
        attendee = {
            "_id": event.registration_id, "stop_id": event.stop_id, "email": normalize_email(event.email),
            "first_name": event.first_name, "last_name": event.last_name, "locale": locale_of(event.locale),
            "status": event.status, "manage_url": event.manage_url, "updated_at": datetime.now(UTC),
        }
        await repo.save_attendee(tx.db, attendee, tx.session)
        kind = _KIND_BY_EVENT.get(type(event))
        # A transfer's own email covers the cancellation of the original place.
        if isinstance(event, reg.RegistrationCancelledV1) and event.by == "transfer":
            kind = None
        stop = await repo.load_stop(tx.db, event.stop_id, tx.session)
        # A stop's cancellation email already told its attendees; the places registration
        # cancels because of it must not bring a second email.
        if isinstance(event, reg.RegistrationCancelledV1) and event.by == "organiser" and stop is not None \
                and stop.status == "cancelled":
            kind = None
        if kind:
            data = self._registration_data(event, kind)
            if isinstance(event, reg.RegistrationTransferredV1):
                target = await repo.load_stop(tx.db, event.to_stop_id, tx.session)
                data["to_city"] = target.city if target else ""
            await repo.enqueue(tx.db, [repo.new_delivery(
                notification_key(ce.id, attendee["email"], kind), channel="email", kind=kind,
                recipient=attendee["email"], locale=attendee["locale"], data=data)], tx.session)
        await self._plan_reminder(tx, attendee, stop)

    @staticmethod
    def _registration_data(event: reg._RegistrationEvent, kind: str) -> dict[str, Any]:
        data: dict[str, Any] = {"stop_id": event.stop_id, "first_name": event.first_name,
                                "manage_url": event.manage_url or ""}
        dumped = event.model_dump(mode="json")
        data.update({name: dumped[name] for name in _EXTRA_FIELDS.get(kind, ())})
        return data

    async def _plan_reminder(self, tx: Tx, attendee: dict[str, Any], stop: StopSnapshot | None) -> None:
        """Day-before reminder for a confirmed place at a live stop; re-planned (same timer id) when it moves."""
        timer_id = _reminder_timer_id(attendee["_id"])
        due = None
        if stop is not None and attendee["status"] == "confirmed" and stop.status not in ("cancelled", "archived"):
            due = reminder_due(stop.starts_at, self.settings.reminder_hours_before, datetime.now(UTC))
        if due is None:
            await tx.cancel_timer(timer_id)
            return
        await tx.schedule(timer_id, REMINDER_TIMER, due,
                          {"registration_id": attendee["_id"], "starts_at": stop.starts_at.isoformat()})

    async def on_reminder_due(self, tx: Tx, payload: dict[str, Any]) -> None:
        attendee = await repo.load_attendee(tx.db, payload["registration_id"], tx.session)
        if attendee is None or attendee["status"] != "confirmed":
            return
        stop = await repo.load_stop(tx.db, attendee["stop_id"], tx.session)
        if stop is None or stop.status == "cancelled" or stop.starts_at.isoformat() != payload["starts_at"]:
            return
        source = f"reminder:{attendee['_id']}:{payload['starts_at']}"
        await repo.enqueue(tx.db, [repo.new_delivery(
            notification_key(source, attendee["email"], "reminder"), channel="email", kind="reminder",
            recipient=attendee["email"], locale=attendee["locale"],
            data={"stop_id": stop.stop_id, "first_name": attendee["first_name"],
                  "manage_url": attendee.get("manage_url") or ""})], tx.session)

    # ------------------------------------------------------------ stops

    async def on_stop(self, event: venues._StopEvent, tx: Tx, ce: CloudEventHeaders) -> None:
        stop = event.stop
        await repo.save_stop(tx.db, stop, tx.session)
        if isinstance(event, venues.StopPostponedV1):
            await self._tell_attendees(tx, ce, stop, "stop_postponed",
                                       {"previous_starts_at": event.previous_starts_at.isoformat()})
        elif isinstance(event, venues.StopCancelledV1):
            await self._tell_attendees(tx, ce, stop, "stop_cancelled", {"reason": event.reason})
        if isinstance(event, (venues.StopPostponedV1, venues.StopCancelledV1, venues.StopUpdatedV1)):
            for attendee in await repo.attendees_of(tx.db, stop.stop_id, ("confirmed",), tx.session):
                await self._plan_reminder(tx, attendee, stop)
        await self.queue_webhooks(tx, ce, stop.region, {"stop": stop.model_dump(mode="json")})

    async def _tell_attendees(self, tx: Tx, ce: CloudEventHeaders, stop: StopSnapshot, kind: str,
                              extra: dict[str, Any]) -> None:
        attendees = await repo.attendees_of(tx.db, stop.stop_id, ACTIVE_ATTENDEE, tx.session)
        deliveries = [
            repo.new_delivery(notification_key(ce.id, a["email"], kind), channel="email", kind=kind,
                              recipient=a["email"], locale=a["locale"], batch=f"{ce.id}:{kind}",
                              data={"stop_id": stop.stop_id, "first_name": a["first_name"],
                                    "manage_url": a.get("manage_url") or "", **extra})
            for a in attendees
        ]
        await repo.enqueue(tx.db, deliveries, tx.session)

    # ------------------------------------------------------------ webhooks

    async def queue_webhooks(self, tx: Tx, ce: CloudEventHeaders, region: str | None, data: dict[str, Any]) -> None:
        """One signed delivery per active endpoint subscribed to this public event and region."""
        if ce.type not in WEBHOOK_EVENT_TYPES:
            return
        body = json.dumps({"type": ce.type, "timestamp": ce.time.isoformat().replace("+00:00", "Z"), "data": data},
                          separators=(",", ":"), ensure_ascii=False)
        endpoints = await repo.endpoints_for(tx.db, ce.type, region, tx.session)
        await repo.enqueue(tx.db, [
            repo.new_delivery(notification_key(ce.id, e["_id"], "webhook"), channel="webhook", kind=ce.type,
                              recipient=e["_id"], data={"body": body})
            for e in endpoints
        ], tx.session)
