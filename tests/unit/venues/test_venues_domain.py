"""Stop rules without I/O: the whole transition table, times, programme, edits, authorisation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.auth import Principal
from shared.contracts.venues import Venue
from shared.errors import Conflict, Forbidden, Unprocessable
from venues import domain
from venues.domain import PARIS, Session, Stop

DAY = date(2031, 5, 15)
NOW = datetime(2031, 1, 10, 12, tzinfo=UTC)
AFTER = datetime(2031, 5, 16, 12, tzinfo=UTC)


def at(hh: int, mm: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=PARIS)


def make_stop(status: str = "proposed", **overrides) -> Stop:
    fields = dict(id="s1", season=2031, region="BRE", territory_id="t-bre", territory_name="Quimperlé Communauté",
                  city="Quimperlé", venue=Venue(name="Salle"), date=DAY, starts_at=at(9), ends_at=at(13),
                  theme="Ruralité", capacity=120, status=status)
    return Stop(**{**fields, **overrides})


def session(title: str, start: datetime, end: datetime, room: str = "Grande salle", sid: str | None = None) -> Session:
    return Session(sid or title, "round_table", title, start, end, room)


# The expected table is written out by hand (not derived from domain.TRANSITIONS) so that
# a change to the lifecycle has to be made twice, knowingly.
LEGAL: dict[tuple[str, str], str] = {
    ("proposed", "accept"): "accepted",
    ("postponed", "accept"): "accepted",
    ("proposed", "reject"): "rejected",
    ("accepted", "open_registration"): "registration_open",
    ("registration_closed", "open_registration"): "registration_open",
    ("postponed", "open_registration"): "registration_open",
    ("registration_open", "close_registration"): "registration_closed",
    ("postponed", "close_registration"): "registration_closed",
    ("registration_open", "mark_held"): "held",
    ("registration_closed", "mark_held"): "held",
    ("held", "archive"): "archived",
    **{(s, "postpone"): "postponed" for s in ("accepted", "registration_open", "registration_closed", "postponed")},
    **{(s, "cancel"): "cancelled" for s in ("accepted", "registration_open", "registration_closed", "postponed")},
}
STATUSES = ["proposed", "accepted", "registration_open", "registration_closed", "held", "archived", "rejected",
            "postponed", "cancelled"]
ACTIONS = ["accept", "reject", "open_registration", "close_registration", "mark_held", "archive", "postpone",
           "cancel"]


def apply(stop: Stop, action: str) -> None:
    if action == "postpone":
        domain.postpone(stop, DAY + timedelta(days=7), at(9, day=DAY + timedelta(days=7)),
                        at(13, day=DAY + timedelta(days=7)), NOW)
    elif action == "cancel":
        domain.cancel(stop, "storm", AFTER)
    elif action == "reject":
        domain.reject(stop, "", NOW)
    else:
        domain.transition(stop, action, AFTER)  # type: ignore[arg-type]


def test_the_table_covers_every_status_and_action():
    assert sorted(STATUSES) == sorted(domain.ALL_STATUSES)
    assert sorted(ACTIONS) == sorted(domain.ACTIONS)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", ACTIONS)
def test_transition(status: str, action: str):
    stop = make_stop(status)
    expected = LEGAL.get((status, action))
    if expected is None:
        with pytest.raises(Conflict) as refused:
            apply(stop, action)
        assert refused.value.code == "illegal_transition"
        assert refused.value.extra["current_state"] == status
        assert refused.value.extra["allowed"] == sorted({t for (s, _), t in LEGAL.items() if s == status})
        assert stop.status == status
    else:
        apply(stop, action)
        assert stop.status == expected


def test_only_rejected_cancelled_and_archived_free_the_region():
    assert {s for s in STATUSES if not make_stop(s).active} == {"rejected", "cancelled", "archived"}


def test_a_stop_cannot_be_held_before_it_starts():
    stop = make_stop("registration_closed")
    with pytest.raises(Conflict) as refused:
        domain.transition(stop, "mark_held", at(8, 59).astimezone(UTC))
    assert refused.value.code == "not_started"
    domain.transition(stop, "mark_held", at(9))
    assert stop.status == "held"


def test_cancel_keeps_the_reason_and_bumps_the_sequence():
    stop = make_stop("registration_open")
    domain.cancel(stop, "Alerte météo", NOW)
    assert (stop.status, stop.cancel_reason, stop.sequence) == ("cancelled", "Alerte météo", 1)


# --- times ------------------------------------------------------------------------------------

def test_times_are_local_paris_wall_time_or_iso_on_the_day():
    assert domain.resolve_time(DAY, "09:30", "starts_at") == at(9, 30)
    assert domain.resolve_time(DAY, "9:30", "starts_at") == at(9, 30)
    assert domain.resolve_time(DAY, "2031-05-15T07:30:00Z", "starts_at") == at(9, 30)
    assert domain.resolve_time(DAY, "2031-05-15T09:30:00", "starts_at") == at(9, 30)
    assert domain.resolve_time(DAY, "2031-05-15T09:30:00+02:00", "starts_at").utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("value, reason", [
    ("2031-05-16T09:00:00+02:00", "must be on 2031-05-15"),
    ("2031-05-15T23:30:00Z", "must be on 2031-05-15"),  # 01:30 the next day in Paris
    ("half past nine", "expected HH:MM"),
    ("25:00", "expected HH:MM"),
])
def test_times_off_the_day_or_unreadable_are_422(value: str, reason: str):
    with pytest.raises(Unprocessable) as refused:
        domain.resolve_time(DAY, value, "starts_at")
    assert reason in refused.value.fields["starts_at"]


def test_a_time_skipped_by_the_clock_change_is_refused():
    with pytest.raises(Unprocessable, match="does not exist"):
        domain.resolve_time(date(2031, 3, 30), "02:30", "starts_at")


def test_schedule_rules():
    with pytest.raises(Unprocessable, match="in the past"):
        domain.check_schedule(date(2031, 1, 9), 2031, NOW, allow_past=False)
    domain.check_schedule(date(2031, 1, 10), 2031, NOW, allow_past=False)  # today is fine
    domain.check_schedule(date(2022, 3, 10), 2022, NOW, allow_past=True)  # the seed's past season
    with pytest.raises(Unprocessable, match="not in season 2032"):
        domain.check_schedule(DAY, 2032, NOW, allow_past=False)
    with pytest.raises(Unprocessable, match="ends_at must be after starts_at"):
        domain.check_hours(at(13), at(9))


@pytest.mark.parametrize("region", ["ARA", "COR", "PAC", "GP", "YT"])
def test_known_regions(region: str):
    domain.check_region(region)


@pytest.mark.parametrize("region", ["XX", "FR-BRE", "bre", ""])
def test_unknown_regions_are_422(region: str):
    with pytest.raises(Unprocessable) as refused:
        domain.check_region(region)
    assert refused.value.fields == {"region": "unknown region code"}


# --- postponement and edits -------------------------------------------------------------------

def test_postpone_moves_the_programme_and_bumps_the_sequence():
    stop = make_stop("registration_open", sessions=[session("Ouverture", at(9), at(9, 30))])
    new_day = DAY + timedelta(days=21)
    before = domain.postpone(stop, new_day, at(10, day=new_day), at(14, day=new_day), NOW)
    assert before.date == DAY and before.status == "registration_open"
    assert (stop.status, stop.date, stop.sequence) == ("postponed", new_day, 1)
    assert (stop.sessions[0].starts_at, stop.sessions[0].ends_at) == (at(10, day=new_day), at(10, 30, day=new_day))


def test_postpone_needs_a_new_future_date_that_keeps_the_programme():
    stop = make_stop("accepted", sessions=[session("Débat", at(11), at(13))])
    with pytest.raises(Unprocessable, match="needs a new date"):
        domain.postpone(stop, DAY, at(9), at(12), NOW)
    with pytest.raises(Unprocessable, match="in the past"):
        domain.postpone(stop, date(2031, 1, 1), at(9, day=date(2031, 1, 1)), at(12, day=date(2031, 1, 1)), NOW)
    later = DAY + timedelta(days=1)
    with pytest.raises(Conflict) as refused:  # the debate would end at 13:00, after the new 12:00 end
        domain.postpone(stop, later, at(9, day=later), at(12, day=later), NOW)
    assert refused.value.extra["sessions"] == ["Débat"]
    assert stop.status == "accepted" and stop.date == DAY


def test_capacity_may_grow_or_shrink_but_not_below_the_confirmed_count():
    stop = make_stop("registration_open")
    with pytest.raises(Conflict) as refused:
        domain.edit(stop, {"capacity": 40}, confirmed=41)
    assert refused.value.extra == {"capacity": 40, "confirmed": 41}
    assert domain.edit(stop, {"capacity": 41}, confirmed=41) == ([], 120)
    assert stop.capacity == 41 and stop.sequence == 0


def test_only_place_and_time_changes_bump_the_sequence():
    stop = make_stop()
    assert domain.edit(stop, {"theme": "Autre thème"}, 0) == (["theme"], None)
    assert stop.sequence == 0
    assert domain.edit(stop, {"venue": Venue(name="Autre salle"), "theme": "Autre thème"}, 0) == (["venue"], None)
    assert stop.sequence == 1
    domain.edit(stop, {"starts_at": at(8)}, 0)
    assert stop.sequence == 2


def test_edits_of_finished_stops_are_refused():
    for status in ("held", "archived", "rejected", "cancelled"):
        with pytest.raises(Conflict) as refused:
            domain.edit(make_stop(status), {"theme": "x"}, 0)
        assert refused.value.code == "not_editable"


# --- programme --------------------------------------------------------------------------------

def test_sessions_in_the_same_room_may_not_overlap():
    stop = make_stop()
    domain.add_session(stop, session("Ouverture", at(9), at(10)))
    with pytest.raises(Conflict) as refused:
        domain.add_session(stop, session("Table ronde", at(9, 30), at(10, 30), room="  grande   SALLE "))
    assert refused.value.code == "room_overlap"
    domain.add_session(stop, session("Atelier", at(9, 30), at(10, 30), room="Salle B"))
    domain.add_session(stop, session("Visite", at(9, 30), at(10, 30), room=""))  # no room: nothing to clash with
    domain.add_session(stop, session("Débat", at(10), at(11)))  # back-to-back is fine
    assert [s.title for s in stop.sessions] == ["Ouverture", "Atelier", "Visite", "Débat"]


def test_a_session_must_fit_in_the_stop_hours():
    stop = make_stop()
    with pytest.raises(Unprocessable, match="09:00–13:00"):
        domain.add_session(stop, session("Tard", at(12, 30), at(13, 30)))
    with pytest.raises(Unprocessable, match="ends_at must be after"):
        domain.add_session(stop, session("Envers", at(11), at(10)))


def test_moving_a_session_onto_another_is_refused_and_itself_is_no_clash():
    stop = make_stop()
    domain.add_session(stop, session("A", at(9), at(10), sid="a"))
    domain.add_session(stop, session("B", at(10), at(11), sid="b"))
    updated, changed = domain.update_session(stop, "a", {"ends_at": at(9, 45)})
    assert changed == ["ends_at"] and updated.ends_at == at(9, 45)
    with pytest.raises(Conflict):
        domain.update_session(stop, "a", {"ends_at": at(10, 15)})


def test_stop_hours_cannot_shrink_under_its_sessions():
    stop = make_stop(sessions=[session("Débat", at(11), at(12, 30))])
    with pytest.raises(Conflict, match="Débat"):
        domain.edit(stop, {"ends_at": at(12)}, 0)


# --- who may do what --------------------------------------------------------------------------

STAFF = Principal("staff-1", "staff")
HOST_BRE = Principal("host-1", "host", "t-bre", "BRE")
HOST_NOR = Principal("host-2", "host", "t-nor", "NOR")


@pytest.mark.parametrize("action", ["accept", "reject", "cancel", "postpone", "archive"])
def test_staff_only_actions(action: str):
    stop = make_stop()
    with pytest.raises(Forbidden, match="only circuit staff"):
        domain.authorize(HOST_BRE, stop, action)  # type: ignore[arg-type]
    domain.authorize(STAFF, stop, action)  # type: ignore[arg-type]


@pytest.mark.parametrize("action", ["edit", "open_registration", "close_registration", "mark_held"])
def test_hosts_act_on_their_own_territory_only(action: str):
    stop = make_stop()
    domain.authorize(HOST_BRE, stop, action)  # type: ignore[arg-type]
    domain.authorize(STAFF, stop, action)  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        domain.authorize(HOST_NOR, stop, action)  # type: ignore[arg-type]
