"""The stop as an iCalendar event (RFC 5545), rebuilt from the stop read model.

Venues builds the same calendar for GET /stops/{id}.ics; both must agree on
UID (``stop-<id>@intercotour``) and SEQUENCE (the stop's ``sequence``) so a
calendar updates the attendee's existing entry instead of adding another.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from shared.contracts.venues import StopSnapshot

PRODID = "-//IntercoTOUR//notifications//FR"


def stop_uid(stop_id: str) -> str:
    return f"stop-{stop_id}@intercotour"


def stop_calendar(stop: StopSnapshot, *, cancelled: bool = False, now: datetime | None = None) -> bytes:
    """METHOD:REQUEST for a live stop; METHOD:CANCEL (STATUS:CANCELLED) once it is cancelled."""
    tz = ZoneInfo(stop.timezone or "Europe/Paris")
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if cancelled else "REQUEST")
    event = Event()
    event.add("uid", stop_uid(stop.stop_id))
    event.add("sequence", stop.sequence)
    event.add("dtstamp", now or datetime.now(UTC))
    event.add("dtstart", stop.starts_at.astimezone(tz))
    event.add("dtend", stop.ends_at.astimezone(tz))
    event.add("summary", f"IntercoTOUR {stop.city} — {stop.theme}")
    event.add("location", ", ".join(part for part in (stop.venue.name, stop.venue.address) if part))
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    cal.add_component(event)
    cal.add_missing_timezones()
    return cal.to_ical()
