"""The .ics built from a stop snapshot, read back with the icalendar library."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar

from shared.contracts.venues import StopSnapshot, Venue
from shared.calendar import calendar_of, stop_calendar

PARIS = ZoneInfo("Europe/Paris")


def snapshot(**overrides) -> StopSnapshot:
    fields = dict(stop_id="abc", season=2031, region="NOR", territory_id="t", territory_name="Métropole Rouen Normandie",
                  city="Rouen", venue=Venue(name="Hôtel de Métropole", address="108 allée François Mitterrand",
                                            lat=49.44, lon=1.10, accessibility="Plain-pied"),
                  date=date(2031, 12, 11), starts_at=datetime(2031, 12, 11, 9, tzinfo=PARIS),
                  ends_at=datetime(2031, 12, 11, 13, tzinfo=PARIS), theme="Le numérique responsable",
                  capacity=3, status="registration_open", sequence=2)
    return StopSnapshot(**{**fields, **overrides})


def only_event(body: bytes):
    calendar = Calendar.from_ical(body)
    [event] = calendar.walk("VEVENT")
    return calendar, event


def test_one_stop_calendar():
    calendar, event = only_event(stop_calendar(snapshot()))
    assert calendar["METHOD"] == "PUBLISH" and calendar["VERSION"] == "2.0"
    assert str(event["UID"]) == "stop-abc@intercotour"
    assert event["SEQUENCE"] == 2 and event["STATUS"] == "CONFIRMED"
    start = event.decoded("DTSTART")
    assert start == datetime(2031, 12, 11, 8, tzinfo=UTC)
    assert event["DTSTART"].params["TZID"] == "Europe/Paris"
    assert "Hôtel de Métropole" in str(event["LOCATION"]) and "Rouen" in str(event["LOCATION"])
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Paris"]
    assert event.decoded("GEO") is not None


def test_a_cancelled_stop_keeps_its_uid_and_says_cancelled():
    _, before = only_event(stop_calendar(snapshot()))
    calendar, after = only_event(stop_calendar(snapshot(status="cancelled", sequence=3, cancel_reason="Tempête"),
                                               method="CANCEL"))
    assert calendar["METHOD"] == "CANCEL"
    assert after["UID"] == before["UID"] and after["SEQUENCE"] > before["SEQUENCE"]
    assert after["STATUS"] == "CANCELLED" and "Tempête" in str(after["DESCRIPTION"])


def test_the_same_snapshot_gives_the_same_bytes_for_a_fixed_stamp():
    stamp = datetime(2031, 1, 1, tzinfo=UTC)
    assert stop_calendar(snapshot(), dtstamp=stamp) == stop_calendar(snapshot(), dtstamp=stamp)


def test_a_season_feed_holds_one_event_per_stop():
    body = calendar_of([snapshot(), snapshot(stop_id="def", region="BRE", status="proposed")], name="IntercoTOUR 2031")
    calendar = Calendar.from_ical(body)
    events = calendar.walk("VEVENT")
    assert [str(e["UID"]) for e in events] == ["stop-abc@intercotour", "stop-def@intercotour"]
    assert events[1]["STATUS"] == "TENTATIVE"
    assert calendar["X-WR-CALNAME"] == "IntercoTOUR 2031"


def test_the_cancel_method_marks_the_event_cancelled_even_for_a_live_stop():
    """Notifications sends METHOD:CANCEL to an attendee whose own registration ended."""
    calendar, event = only_event(stop_calendar(snapshot(status="registration_open"), method="CANCEL"))
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
