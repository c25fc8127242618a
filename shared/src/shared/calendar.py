"""iCalendar for stops — pure functions of the event snapshot: venues serves them
(GET /stops/{id}.ics, the season feed) and notifications attaches the very same
calendar to its emails, so a calendar app updates one entry instead of adding another.

UID is stable per stop; SEQUENCE is the snapshot's (it grows on every date/place
change and on cancellation), times are Europe/Paris with a VTIMEZONE.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vGeo

from shared.contracts.venues import StopSnapshot

PRODID = "-//IntercoTOUR//circuit//FR"
Method = Literal["PUBLISH", "REQUEST", "CANCEL"]

_STATUS = {
    "proposed": "TENTATIVE", "postponed": "TENTATIVE", "cancelled": "CANCELLED", "rejected": "CANCELLED",
}


def stop_uid(stop_id: str) -> str:
    return f"stop-{stop_id}@intercotour"


def stop_event(snapshot: StopSnapshot, *, dtstamp: datetime | None = None, cancelled: bool = False) -> Event:
    tz = ZoneInfo(snapshot.timezone)
    event = Event()
    event.add("uid", stop_uid(snapshot.stop_id))
    event.add("dtstamp", dtstamp or datetime.now(UTC))
    event.add("sequence", snapshot.sequence)
    event.add("dtstart", snapshot.starts_at.astimezone(tz))
    event.add("dtend", snapshot.ends_at.astimezone(tz))
    event.add("summary", f"IntercoTOUR {snapshot.city} — {snapshot.theme}")
    event.add("description", _description(snapshot))
    event.add("location", ", ".join(p for p in (snapshot.venue.name, snapshot.venue.address, snapshot.city) if p))
    if snapshot.venue.lat is not None and snapshot.venue.lon is not None:
        event.add("geo", vGeo((snapshot.venue.lat, snapshot.venue.lon)))
    event.add("status", "CANCELLED" if cancelled else _STATUS.get(snapshot.status, "CONFIRMED"))
    return event


def _description(snapshot: StopSnapshot) -> str:
    lines = [snapshot.theme, f"Territoire hôte : {snapshot.territory_name}" if snapshot.territory_name else ""]
    if snapshot.venue.accessibility:
        lines.append(f"Accessibilité : {snapshot.venue.accessibility}")
    if snapshot.status == "cancelled" and snapshot.cancel_reason:
        lines.append(f"Annulé : {snapshot.cancel_reason}")
    return "\n".join(line for line in lines if line)


def calendar_of(snapshots: Iterable[StopSnapshot], *, method: Method = "PUBLISH", name: str | None = None,
                dtstamp: datetime | None = None) -> bytes:
    """One VCALENDAR holding a VEVENT per stop (and the VTIMEZONEs they use)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    if name:
        calendar.add("x-wr-calname", name)
    stamp = dtstamp or datetime.now(UTC)
    years = set()
    for snapshot in snapshots:
        calendar.add_component(stop_event(snapshot, dtstamp=stamp, cancelled=method == "CANCEL"))
        years.add(snapshot.date.year)
    if years:
        # Transitions of the years the stops fall in only: a short VTIMEZONE, not 1970–2038.
        calendar.add_missing_timezones(first_date=date(min(years), 1, 1), last_date=date(max(years) + 1, 1, 1))
    return calendar.to_ical()


def stop_calendar(snapshot: StopSnapshot, *, method: Method = "PUBLISH", dtstamp: datetime | None = None) -> bytes:
    """The .ics of one stop; ``method="CANCEL"`` for the cancellation sent to attendees."""
    return calendar_of([snapshot], method=method, dtstamp=dtstamp)
