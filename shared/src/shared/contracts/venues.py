"""Events published by venues: stops (key = stop id) and territories (key = territory id).

Each stop event carries the whole stop snapshot, so consumers build their read
models without calling venues back.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import topics
from shared.contracts.base import Event

StopStatus = Literal[
    "proposed", "accepted", "registration_open", "registration_closed", "held", "archived",
    "rejected", "postponed", "cancelled",
]
SessionKind = Literal["opening", "plenary", "round_table", "debate", "workshop", "visit"]
TerritoryKind = Literal["metropolis", "agglomeration", "community_of_communes", "department", "region", "city"]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Venue(_Part):
    name: str
    address: str = ""
    lat: float | None = None
    lon: float | None = None
    accessibility: str = ""


class StopSnapshot(_Part):
    stop_id: str
    season: int
    region: str
    territory_id: str
    territory_name: str = ""
    city: str
    venue: Venue
    date: date
    starts_at: datetime
    ends_at: datetime
    timezone: str = "Europe/Paris"
    theme: str
    capacity: int
    status: StopStatus
    sequence: int = 0
    offer_validity_hours: int = 48
    cancel_reason: str | None = None


class Speaker(_Part):
    name: str
    role: str = ""
    organisation: str = ""


class SessionSnapshot(_Part):
    session_id: str
    stop_id: str
    kind: SessionKind
    title: str
    starts_at: datetime
    ends_at: datetime
    room: str = ""
    speakers: list[Speaker] = Field(default_factory=list)


class _StopEvent(Event):
    TOPIC: ClassVar[str] = topics.VENUES_STOPS
    stop_id: str
    stop: StopSnapshot

    def subject(self) -> str | None:
        return self.stop_id


class StopProposedV1(_StopEvent):
    TYPE: ClassVar[str] = "venues.stop.proposed.v1"


class StopAcceptedV1(_StopEvent):
    TYPE: ClassVar[str] = "venues.stop.accepted.v1"


class StopRejectedV1(_StopEvent):
    TYPE: ClassVar[str] = "venues.stop.rejected.v1"
    reason: str = ""


class StopRegistrationOpenedV1(_StopEvent):
    TYPE: ClassVar[str] = "venues.stop.registration_opened.v1"


class StopRegistrationClosedV1(_StopEvent):
    TYPE: ClassVar[str] = "venues.stop.registration_closed.v1"


class StopUpdatedV1(_StopEvent):
    """Fields edited outside the lifecycle (theme, venue, times…); ``changed`` names them."""

    TYPE: ClassVar[str] = "venues.stop.updated.v1"
    changed: list[str] = Field(default_factory=list)


class StopCapacityChangedV1(_StopEvent):
    TYPE: ClassVar[str] = "venues.stop.capacity_changed.v1"
    previous_capacity: int


class StopPostponedV1(_StopEvent):
    TYPE: ClassVar[str] = "venues.stop.postponed.v1"
    previous_date: date
    previous_starts_at: datetime
    previous_ends_at: datetime


class StopCancelledV1(_StopEvent):
    TYPE: ClassVar[str] = "venues.stop.cancelled.v1"
    reason: str


class StopHeldV1(_StopEvent):
    TYPE: ClassVar[str] = "venues.stop.held.v1"


class StopArchivedV1(_StopEvent):
    TYPE: ClassVar[str] = "venues.stop.archived.v1"


class _SessionEvent(Event):
    TOPIC: ClassVar[str] = topics.VENUES_STOPS
    stop_id: str
    session: SessionSnapshot

    def subject(self) -> str | None:
        return self.session.session_id


class SessionAddedV1(_SessionEvent):
    TYPE: ClassVar[str] = "venues.session.added.v1"


class SessionUpdatedV1(_SessionEvent):
    TYPE: ClassVar[str] = "venues.session.updated.v1"
    changed: list[str] = Field(default_factory=list)


class SessionRemovedV1(_SessionEvent):
    TYPE: ClassVar[str] = "venues.session.removed.v1"


class TerritorySnapshot(_Part):
    territory_id: str
    name: str
    kind: TerritoryKind
    region: str
    contact_email: str = ""
    contact_name: str = ""


class _TerritoryEvent(Event):
    TOPIC: ClassVar[str] = topics.VENUES_TERRITORIES
    territory_id: str
    territory: TerritorySnapshot

    def key(self) -> str:
        return self.territory_id

    def subject(self) -> str | None:
        return self.territory_id


class TerritoryCreatedV1(_TerritoryEvent):
    TYPE: ClassVar[str] = "venues.territory.created.v1"


class TerritoryUpdatedV1(_TerritoryEvent):
    TYPE: ClassVar[str] = "venues.territory.updated.v1"
    changed: list[str] = Field(default_factory=list)


STOP_EVENTS: tuple[type[_StopEvent], ...] = (
    StopProposedV1, StopAcceptedV1, StopRejectedV1, StopRegistrationOpenedV1, StopRegistrationClosedV1,
    StopUpdatedV1, StopCapacityChangedV1, StopPostponedV1, StopCancelledV1, StopHeldV1, StopArchivedV1,
)
SESSION_EVENTS: tuple[type[_SessionEvent], ...] = (SessionAddedV1, SessionUpdatedV1, SessionRemovedV1)
TERRITORY_EVENTS: tuple[type[_TerritoryEvent], ...] = (TerritoryCreatedV1, TerritoryUpdatedV1)
EVENTS = (*STOP_EVENTS, *SESSION_EVENTS, *TERRITORY_EVENTS)
