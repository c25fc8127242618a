"""Events published by registration on ``registration.registrations.v1`` (key = stop id).

Every registration event carries the person's contact details (notifications
emails them without calling back) and the stop's occupancy after the change
(venues refuses a capacity cut below the confirmed count with it).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from shared.contracts import topics
from shared.contracts.base import Event

RegistrationStatus = Literal["confirmed", "waitlisted", "offered", "cancelled", "checked_in", "no_show", "transferred"]
Profile = Literal["elected_official", "public_sector_staff", "entrepreneur", "institutional_partner", "other"]
CancelledBy = Literal["attendee", "organiser", "transfer", "system"]


class Occupancy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    capacity: int
    confirmed: int
    offered: int = 0
    waitlisted: int = 0

    @property
    def available(self) -> int:
        return max(0, self.capacity - self.confirmed - self.offered)


class _RegistrationEvent(Event):
    TOPIC: ClassVar[str] = topics.REGISTRATION_REGISTRATIONS
    registration_id: str
    stop_id: str
    email: str
    first_name: str = ""
    last_name: str = ""
    locale: str = "fr"
    status: RegistrationStatus
    manage_url: str | None = None
    occupancy: Occupancy | None = None

    def subject(self) -> str | None:
        return self.registration_id


class RegistrationConfirmedV1(_RegistrationEvent):
    TYPE: ClassVar[str] = "registration.registration.confirmed.v1"
    check_in_code: str
    via: Literal["signup", "offer", "transfer"] = "signup"


class RegistrationWaitlistedV1(_RegistrationEvent):
    TYPE: ClassVar[str] = "registration.registration.waitlisted.v1"
    position: int


class OfferMadeV1(_RegistrationEvent):
    TYPE: ClassVar[str] = "registration.offer.made.v1"
    expires_at: datetime
    accept_url: str
    decline_url: str


class OfferAcceptedV1(_RegistrationEvent):
    TYPE: ClassVar[str] = "registration.offer.accepted.v1"


class OfferDeclinedV1(_RegistrationEvent):
    TYPE: ClassVar[str] = "registration.offer.declined.v1"


class OfferExpiredV1(_RegistrationEvent):
    TYPE: ClassVar[str] = "registration.offer.expired.v1"


class RegistrationCancelledV1(_RegistrationEvent):
    TYPE: ClassVar[str] = "registration.registration.cancelled.v1"
    by: CancelledBy
    reason: str = ""


class RegistrationTransferredV1(_RegistrationEvent):
    """Published on the source stop's key once the place at the target stop is settled."""

    TYPE: ClassVar[str] = "registration.registration.transferred.v1"
    to_stop_id: str
    to_registration_id: str
    to_status: Literal["confirmed", "waitlisted"]


class CheckedInV1(_RegistrationEvent):
    TYPE: ClassVar[str] = "registration.registration.checked_in.v1"
    checked_in_at: datetime


class NoShowV1(_RegistrationEvent):
    TYPE: ClassVar[str] = "registration.registration.no_show.v1"


class _StopAvailabilityEvent(Event):
    TOPIC: ClassVar[str] = topics.REGISTRATION_REGISTRATIONS
    stop_id: str
    occupancy: Occupancy

    def subject(self) -> str | None:
        return self.stop_id


class StopSoldOutV1(_StopAvailabilityEvent):
    TYPE: ClassVar[str] = "registration.stop.sold_out.v1"


class StopPlacesAvailableV1(_StopAvailabilityEvent):
    TYPE: ClassVar[str] = "registration.stop.places_available.v1"


EVENTS = (
    RegistrationConfirmedV1, RegistrationWaitlistedV1, OfferMadeV1, OfferAcceptedV1, OfferDeclinedV1,
    OfferExpiredV1, RegistrationCancelledV1, RegistrationTransferredV1, CheckedInV1, NoShowV1,
    StopSoldOutV1, StopPlacesAvailableV1,
)
