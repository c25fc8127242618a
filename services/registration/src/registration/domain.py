"""Registration rules without I/O: statuses, occupancy, offers, check-in outcomes."""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email

from shared.contracts.registration import Occupancy

# A registration in one of these holds the person's single slot at the stop (unique per email).
ACTIVE = frozenset({"confirmed", "waitlisted", "offered", "checked_in", "no_show"})
# Counted in the stop's ``confirmed`` counter: the person holds a place.
HOLDS_PLACE = frozenset({"confirmed", "checked_in", "no_show"})
# A self-service cancel or transfer is possible only before the stop took place for them.
CANCELLABLE = frozenset({"confirmed", "waitlisted", "offered"})
# Freed places are offered to the waitlist only while the stop is still to come.
OFFERING_STOP_STATUSES = frozenset({"registration_open", "registration_closed", "postponed"})
SIGNUP_STOP_STATUS = "registration_open"

NAME_MAX = 100
ORGANISATION_MAX = 200
EMAIL_MAX = 254


class CheckInReason:
    UNKNOWN_CODE = "unknown_code"
    WRONG_STOP = "wrong_stop"
    CANCELLED = "cancelled"
    NOT_CONFIRMED = "not_confirmed"
    ALREADY_CHECKED_IN = "already_checked_in"


def normalise_email(raw: str) -> str:
    """Lower-cased, trimmed and syntactically valid (no DNS lookup); ValueError otherwise."""
    candidate = raw.strip().lower()
    if len(candidate) > EMAIL_MAX:
        raise ValueError(f"email is longer than {EMAIL_MAX} characters")
    try:
        return validate_email(candidate, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc


def new_registration_id() -> str:
    return f"reg_{uuid.uuid4().hex}"


def new_check_in_code() -> str:
    """10 base32 characters = 50 random bits: short enough to type, too many to guess."""
    return base64.b32encode(secrets.token_bytes(7)).decode()[:10]


@dataclass(frozen=True)
class StopView:
    """The read-model stop with its counters, as stored in one document."""

    stop_id: str
    status: str
    territory_id: str
    region: str
    city: str
    starts_at: datetime
    ends_at: datetime
    offer_validity_hours: int
    capacity: int
    confirmed: int
    offered: int
    waitlisted: int
    sold_out: bool

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "StopView":
        return cls(
            stop_id=doc["_id"], status=doc["status"], territory_id=doc.get("territory_id", ""),
            region=doc.get("region", ""), city=doc.get("city", ""), starts_at=doc["starts_at"],
            ends_at=doc["ends_at"], offer_validity_hours=doc.get("offer_validity_hours", 48),
            capacity=doc.get("capacity", 0), confirmed=doc.get("confirmed", 0), offered=doc.get("offered", 0),
            waitlisted=doc.get("waitlisted", 0), sold_out=doc.get("sold_out", False),
        )

    @property
    def occupancy(self) -> Occupancy:
        return Occupancy(capacity=self.capacity, confirmed=self.confirmed, offered=self.offered,
                         waitlisted=self.waitlisted)

    @property
    def available(self) -> int:
        return self.occupancy.available

    def offers_places(self, now: datetime) -> bool:
        return self.status in OFFERING_STOP_STATUSES and now < self.starts_at

    def signup_refusal(self, now: datetime) -> str | None:
        """Why a sign-up is refused (422), or None when the stop takes sign-ups."""
        if self.status != SIGNUP_STOP_STATUS:
            return f"registration is not open for this stop (status: {self.status})"
        if now >= self.starts_at:
            return "this stop has already started"
        return None


def offer_expiry(now: datetime, validity_hours: int, starts_at: datetime) -> datetime:
    """An offer lasts ``validity_hours`` but never past the stop's start."""
    return min(now + timedelta(hours=validity_hours), starts_at)


def manage_link_ttl(now: datetime, ends_at: datetime, days_after_end: int) -> int:
    return max(60, int((ends_at + timedelta(days=days_after_end) - now).total_seconds()))


def check_in_refusal(registration: dict[str, Any] | None, stop_id: str) -> str | None:
    """The reason a scanned code cannot be checked in, or None when it can."""
    if registration is None:
        return CheckInReason.UNKNOWN_CODE
    if registration["stop_id"] != stop_id:
        return CheckInReason.WRONG_STOP
    status = registration["status"]
    if status == "checked_in":
        return CheckInReason.ALREADY_CHECKED_IN
    if status in ("cancelled", "transferred"):
        return CheckInReason.CANCELLED
    if status not in HOLDS_PLACE:
        return CheckInReason.NOT_CONFIRMED
    return None
