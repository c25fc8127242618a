"""Pure rules of the notifications service: what is sent to whom, keys, backoff — no I/O."""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta
from typing import Literal

Channel = Literal["email", "webhook"]
Status = Literal["queued", "sent", "failed", "suppressed"]
STATUSES: tuple[str, ...] = ("queued", "sent", "failed", "suppressed")
Locale = Literal["fr", "en"]

# ISO 3166-2:FR region codes (the form venues' stops carry, e.g. "ARA").
REGIONS: frozenset[str] = frozenset({
    "ARA", "BFC", "BRE", "CVL", "20R", "GES", "HDF", "IDF", "NOR", "NAQ", "OCC", "PDL", "PAC",
    "971", "972", "973", "974", "976",
})
FOLLOW_TOPICS: frozenset[str] = frozenset({"replays", "stops"})

# Email kinds. Transactional mail concerns the person's own registration (or a
# message they asked for) and ignores opt-outs; everything else honours them.
TRANSACTIONAL_KINDS: frozenset[str] = frozenset({
    "registration_confirmed", "registration_waitlisted", "offer_made", "offer_expired",
    "registration_cancelled", "registration_transferred", "stop_postponed", "stop_cancelled",
    "reminder", "follow_confirm", "webhook_disabled",
})
LIST_KINDS: frozenset[str] = frozenset({"replay_digest", "new_stop"})
KINDS = TRANSACTIONAL_KINDS | LIST_KINDS

# Registration statuses that still hold (or wait for) a place at the stop.
ACTIVE_ATTENDEE = ("confirmed", "waitlisted", "offered", "checked_in")
# Who hears about the stop's replays: people who had a place, whether or not they came.
REPLAY_AUDIENCE = ("confirmed", "checked_in", "no_show")

# Public events partners may subscribe to (CloudEvents types); never attendee data.
WEBHOOK_EVENT_TYPES: frozenset[str] = frozenset({
    "venues.stop.registration_opened.v1", "venues.stop.postponed.v1", "venues.stop.cancelled.v1",
    "venues.stop.held.v1", "replays.replay.published.v1",
})


def normalize_email(address: str) -> str:
    return address.strip().lower()


def locale_of(value: str | None) -> Locale:
    """English only when the person asked for it; French otherwise (the product is French-first)."""
    return "en" if (value or "").lower().startswith("en") else "fr"


def notification_key(source_id: str, recipient: str, kind: str) -> str:
    """At most one delivery per (event or batch, recipient, kind): the deliveries' primary key."""
    return hashlib.sha256(f"{source_id}\x1f{recipient.lower()}\x1f{kind}".encode()).hexdigest()


def email_retry_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter for the ``attempt``-th failure (1-based)."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def webhook_retry_delay(attempt: int, schedule: list[float], rng: random.Random | None = None) -> float | None:
    """Delay before retry number ``attempt`` (1-based), ±10 % jitter; None once the schedule is spent."""
    if attempt > len(schedule):
        return None
    return schedule[attempt - 1] * (rng or random).uniform(0.9, 1.1)


def smtp_failure_is_permanent(code: int | None) -> bool:
    """5xx replies are final (bounce); 4xx and connection errors (no code) are worth retrying."""
    return code is not None and 500 <= code < 600


def reminder_due(starts_at: datetime, hours_before: float, now: datetime) -> datetime | None:
    """When the day-before reminder fires; None when that moment has passed already."""
    due = starts_at - timedelta(hours=hours_before)
    return due if due > now else None


def replay_variant(attendee_status: str) -> Literal["attendee", "missed"]:
    return "missed" if attendee_status == "no_show" else "attendee"
