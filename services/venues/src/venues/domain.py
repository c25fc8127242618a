"""Stops, their lifecycle and programme: the rules, with no I/O.

Times are aware datetimes; a stop's day and hours are read in Europe/Paris.
Refusals raise ``shared.errors`` (the HTTP layer maps them to statuses).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from shared.auth import Principal
from shared.contracts.venues import (
    SessionKind,
    SessionSnapshot,
    Speaker,
    StopSnapshot,
    StopStatus,
    TerritoryKind,
    TerritorySnapshot,
    Venue,
)
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable

PARIS = ZoneInfo("Europe/Paris")

# ISO 3166-2:FR regions (metropolitan) and the overseas regions' short codes, as in PRODUCT.md.
REGIONS: dict[str, str] = {
    "ARA": "Auvergne-Rhône-Alpes", "BFC": "Bourgogne-Franche-Comté", "BRE": "Bretagne",
    "CVL": "Centre-Val de Loire", "COR": "Corse", "GES": "Grand Est", "HDF": "Hauts-de-France",
    "IDF": "Île-de-France", "NOR": "Normandie", "NAQ": "Nouvelle-Aquitaine", "OCC": "Occitanie",
    "PDL": "Pays de la Loire", "PAC": "Provence-Alpes-Côte d'Azur",
    "GP": "Guadeloupe", "MQ": "Martinique", "GF": "Guyane", "RE": "La Réunion", "YT": "Mayotte",
}

Action = Literal[
    "accept", "reject", "open_registration", "close_registration", "mark_held", "archive", "postpone", "cancel",
]
ACTIONS: tuple[Action, ...] = get_args(Action)
ALL_STATUSES: tuple[StopStatus, ...] = get_args(StopStatus)

# action -> (states it may start from, state it leads to).
# Out of `postponed` the stop re-enters the flow once its new date is settled: staff may
# re-accept it (registration stays shut), or it goes straight back to registration
# open/closed; it may also be postponed again or cancelled. Registrations are kept throughout.
TRANSITIONS: dict[Action, tuple[frozenset[StopStatus], StopStatus]] = {
    "accept": (frozenset({"proposed", "postponed"}), "accepted"),
    "reject": (frozenset({"proposed"}), "rejected"),
    "open_registration": (frozenset({"accepted", "registration_closed", "postponed"}), "registration_open"),
    "close_registration": (frozenset({"registration_open", "postponed"}), "registration_closed"),
    "mark_held": (frozenset({"registration_open", "registration_closed"}), "held"),
    "archive": (frozenset({"held"}), "archived"),
    "postpone": (frozenset({"accepted", "registration_open", "registration_closed", "postponed"}), "postponed"),
    "cancel": (frozenset({"accepted", "registration_open", "registration_closed", "postponed"}), "cancelled"),
}
HOST_ACTIONS: frozenset[Action] = frozenset({"open_registration", "close_registration", "mark_held"})
INACTIVE: frozenset[StopStatus] = frozenset({"rejected", "cancelled", "archived"})
EDITABLE: frozenset[StopStatus] = frozenset(
    {"proposed", "accepted", "registration_open", "registration_closed", "postponed"}
)
MAX_SESSIONS_PER_STOP = 40


@dataclass
class Session:
    id: str
    kind: SessionKind
    title: str
    starts_at: datetime
    ends_at: datetime
    room: str = ""
    speakers: list[Speaker] = field(default_factory=list)

    def snapshot(self, stop_id: str) -> SessionSnapshot:
        return SessionSnapshot(
            session_id=self.id, stop_id=stop_id, kind=self.kind, title=self.title, room=self.room,
            starts_at=self.starts_at.astimezone(PARIS), ends_at=self.ends_at.astimezone(PARIS),
            speakers=list(self.speakers),
        )


@dataclass
class Stop:
    id: str
    season: int
    region: str
    territory_id: str
    territory_name: str
    city: str
    venue: Venue
    date: date
    starts_at: datetime
    ends_at: datetime
    theme: str
    capacity: int
    status: StopStatus = "proposed"
    sequence: int = 0
    offer_validity_hours: int = 48
    cancel_reason: str | None = None
    reject_reason: str | None = None
    sessions: list[Session] = field(default_factory=list)

    @property
    def active(self) -> bool:
        """Counts against the one-stop-per-region-per-season rule."""
        return self.status not in INACTIVE

    def snapshot(self) -> StopSnapshot:
        return StopSnapshot(
            stop_id=self.id, season=self.season, region=self.region, territory_id=self.territory_id,
            territory_name=self.territory_name, city=self.city, venue=self.venue, date=self.date,
            starts_at=self.starts_at.astimezone(PARIS), ends_at=self.ends_at.astimezone(PARIS),
            theme=self.theme, capacity=self.capacity, status=self.status, sequence=self.sequence,
            offer_validity_hours=self.offer_validity_hours, cancel_reason=self.cancel_reason,
        )

    def session(self, session_id: str) -> Session:
        for session in self.sessions:
            if session.id == session_id:
                return session
        raise NotFound(f"session {session_id} not found in stop {self.id}")


# --- time -----------------------------------------------------------------------------------

def paris_today(now: datetime) -> date:
    return now.astimezone(PARIS).date()


def resolve_time(day: date, value: str | datetime, field_name: str) -> datetime:
    """A stop or session time: "HH:MM" (Europe/Paris wall time on ``day``) or an ISO datetime
    on that day (an offset is honoured; a naive datetime is read as Europe/Paris)."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = value.strip()
        try:
            if len(text) <= 5 and ":" in text:
                moment = datetime.combine(day, time.fromisoformat(text.zfill(5)))
            else:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise Unprocessable(f"{field_name}: expected HH:MM or an ISO 8601 datetime, got {value!r}",
                                fields={field_name: "expected HH:MM or an ISO 8601 datetime"}) from None
    if moment.tzinfo is None:
        local = moment.replace(tzinfo=PARIS)
        if local.astimezone(UTC).astimezone(PARIS).replace(tzinfo=None) != moment:
            raise Unprocessable(f"{field_name}: {moment:%H:%M} does not exist on {day} in Europe/Paris (clock change)",
                                fields={field_name: "time skipped by the clock change"})
        moment = local
    if moment.astimezone(PARIS).date() != day:
        raise Unprocessable(f"{field_name} must fall on the stop's day {day} (Europe/Paris)",
                            fields={field_name: f"must be on {day} (Europe/Paris)"})
    return moment


def check_hours(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise Unprocessable("ends_at must be after starts_at", fields={"ends_at": "must be after starts_at"})


def check_region(region: str) -> None:
    if region not in REGIONS:
        raise Unprocessable(f"unknown region code {region!r}; expected one of {', '.join(REGIONS)}",
                            fields={"region": "unknown region code"})


def check_schedule(day: date, season: int, now: datetime, *, allow_past: bool) -> None:
    if day.year != season:
        raise Unprocessable(f"date {day} is not in season {season}", fields={"date": f"must be in {season}"})
    if not allow_past and day < paris_today(now):
        raise Unprocessable(f"date {day} is in the past", fields={"date": "must not be in the past"})


# --- lifecycle ------------------------------------------------------------------------------

def allowed_actions(status: StopStatus) -> list[Action]:
    return [action for action in ACTIONS if status in TRANSITIONS[action][0]]


def authorize(principal: Principal, stop: Stop, action: Action | Literal["edit"]) -> None:
    """Staff may do everything; a host only its own territory's edits and HOST_ACTIONS."""
    if action != "edit" and action not in HOST_ACTIONS:
        if not principal.is_staff:
            raise Forbidden(f"only circuit staff may {action.replace('_', ' ')} a stop")
        return
    principal.require_territory(stop.territory_id)


def illegal(stop: Stop, what: str) -> Conflict:
    targets = sorted({TRANSITIONS[a][1] for a in allowed_actions(stop.status)})
    return Conflict(
        f"cannot {what} a stop that is {stop.status}", code="illegal_transition",
        current_state=stop.status, allowed=targets, allowed_actions=allowed_actions(stop.status),
    )


def transition(stop: Stop, action: Action, now: datetime) -> StopStatus:
    """Move ``stop`` along ``action``; returns the previous status."""
    sources, target = TRANSITIONS[action]
    if stop.status not in sources:
        raise illegal(stop, action.replace("_", " "))
    if action == "mark_held" and now < stop.starts_at:
        raise Conflict(f"the stop starts at {stop.starts_at.astimezone(PARIS).isoformat()}; it cannot be held before",
                       code="not_started", current_state=stop.status)
    previous, stop.status = stop.status, target
    return previous


def reject(stop: Stop, reason: str, now: datetime) -> None:
    transition(stop, "reject", now)
    stop.reject_reason = reason or None


def cancel(stop: Stop, reason: str, now: datetime) -> None:
    transition(stop, "cancel", now)
    stop.cancel_reason = reason
    stop.sequence += 1  # calendar clients only apply a CANCEL with a higher SEQUENCE


def require_editable(stop: Stop) -> None:
    if stop.status not in EDITABLE:
        raise Conflict(f"a {stop.status} stop can no longer be edited", code="not_editable",
                       current_state=stop.status, allowed=sorted(EDITABLE))


def postpone(stop: Stop, day: date, starts_at: datetime, ends_at: datetime, now: datetime) -> Stop:
    """Move the stop (and its programme, keeping each session's offset) to a new day; returns the old stop."""
    if stop.status not in TRANSITIONS["postpone"][0]:
        raise illegal(stop, "postpone")
    if day == stop.date:
        raise Unprocessable("a postponement needs a new date (use PATCH to change the hours on the same day)",
                            fields={"date": "same as the current date"})
    check_schedule(day, stop.season, now, allow_past=False)
    check_hours(starts_at, ends_at)
    before = replace(stop, sessions=list(stop.sessions))
    shift = starts_at - stop.starts_at
    moved = [replace(s, starts_at=s.starts_at + shift, ends_at=s.ends_at + shift) for s in stop.sessions]
    _check_sessions_fit(moved, starts_at, ends_at)
    transition(stop, "postpone", now)
    stop.date, stop.starts_at, stop.ends_at, stop.sessions = day, starts_at, ends_at, moved
    stop.sequence += 1
    return before


# --- edits ----------------------------------------------------------------------------------

PLACE_AND_TIME_FIELDS = frozenset({"city", "venue", "starts_at", "ends_at"})


def edit(stop: Stop, changes: dict[str, object], confirmed: int) -> tuple[list[str], int | None]:
    """Apply a PATCH; returns (changed fields other than capacity, previous capacity if it changed)."""
    require_editable(stop)
    starts_at = changes.get("starts_at", stop.starts_at)
    ends_at = changes.get("ends_at", stop.ends_at)
    assert isinstance(starts_at, datetime) and isinstance(ends_at, datetime)  # resolved by the caller
    check_hours(starts_at, ends_at)
    _check_sessions_fit(stop.sessions, starts_at, ends_at)
    previous_capacity: int | None = None
    new_capacity = changes.get("capacity")
    if isinstance(new_capacity, int) and new_capacity != stop.capacity:
        if new_capacity < confirmed:
            raise Conflict(f"capacity {new_capacity} is below the {confirmed} confirmed registrations",
                           code="capacity_below_confirmed", capacity=new_capacity, confirmed=confirmed)
        previous_capacity, stop.capacity = stop.capacity, new_capacity
    changed = []
    for name, value in changes.items():
        if name != "capacity" and getattr(stop, name) != value:
            setattr(stop, name, value)
            changed.append(name)
    if PLACE_AND_TIME_FIELDS.intersection(changed):
        stop.sequence += 1
    return changed, previous_capacity


# --- programme ------------------------------------------------------------------------------

def _check_sessions_fit(sessions: list[Session], starts_at: datetime, ends_at: datetime) -> None:
    outside = [s.title for s in sessions if s.starts_at < starts_at or s.ends_at > ends_at]
    if outside:
        raise Conflict(f"these sessions would fall outside the stop's hours: {', '.join(outside)}; move them first",
                       code="sessions_outside_hours", sessions=outside)


def _room_key(room: str) -> str:
    return " ".join(room.casefold().split())


def check_session(stop: Stop, session: Session) -> None:
    """Within the stop's hours; no overlap with another session in the same (named) room."""
    check_hours(session.starts_at, session.ends_at)
    if session.starts_at < stop.starts_at or session.ends_at > stop.ends_at:
        hours = f"{stop.starts_at.astimezone(PARIS):%H:%M}–{stop.ends_at.astimezone(PARIS):%H:%M}"
        raise Unprocessable(f"a session must fit within the stop's hours ({hours} Europe/Paris)",
                            fields={"starts_at": f"must be within {hours}"})
    if not _room_key(session.room):
        return  # no room named: nothing to clash with
    for other in stop.sessions:
        if (other.id != session.id and _room_key(other.room) == _room_key(session.room)
                and session.starts_at < other.ends_at and other.starts_at < session.ends_at):
            raise Conflict(f"room {session.room!r} is taken by {other.title!r} "
                           f"({other.starts_at.astimezone(PARIS):%H:%M}–{other.ends_at.astimezone(PARIS):%H:%M})",
                           code="room_overlap", session_id=other.id)


def add_session(stop: Stop, session: Session) -> None:
    require_editable(stop)
    if len(stop.sessions) >= MAX_SESSIONS_PER_STOP:
        raise Conflict(f"a stop holds at most {MAX_SESSIONS_PER_STOP} sessions", code="too_many_sessions")
    check_session(stop, session)
    stop.sessions.append(session)
    stop.sessions.sort(key=lambda s: (s.starts_at, s.title))


def update_session(stop: Stop, session_id: str, changes: dict[str, object]) -> tuple[Session, list[str]]:
    require_editable(stop)
    current = stop.session(session_id)
    updated = replace(current, **changes)
    check_session(stop, updated)
    changed = [name for name in changes if getattr(current, name) != getattr(updated, name)]
    stop.sessions = sorted((updated if s.id == session_id else s for s in stop.sessions),
                           key=lambda s: (s.starts_at, s.title))
    return updated, changed


def remove_session(stop: Stop, session_id: str) -> Session:
    require_editable(stop)
    removed = stop.session(session_id)
    stop.sessions = [s for s in stop.sessions if s.id != session_id]
    return removed



# --- territories ----------------------------------------------------------------------------

@dataclass
class Territory:
    id: str
    name: str
    kind: TerritoryKind
    region: str
    contact_email: str = ""
    contact_name: str = ""

    def snapshot(self) -> TerritorySnapshot:
        return TerritorySnapshot(territory_id=self.id, name=self.name, kind=self.kind, region=self.region,
                                 contact_email=self.contact_email, contact_name=self.contact_name)


def check_stop_territory(territory: Territory, region: str) -> None:
    if territory.region != region:
        raise Unprocessable(f"territory {territory.name!r} is in region {territory.region}, not {region}",
                            fields={"region": f"must be the territory's region {territory.region}"})
