"""Every Kafka topic name, in one place (docker-compose's init job and the tests read this list)."""

from __future__ import annotations

VENUES_STOPS = "venues.stops.v1"
VENUES_TERRITORIES = "venues.territories.v1"
REGISTRATION_REGISTRATIONS = "registration.registrations.v1"
REPLAYS_REPLAYS = "replays.replays.v1"
NOTIFICATIONS_DELIVERIES = "notifications.deliveries.v1"
PRIVACY_REQUESTS = "privacy.requests.v1"
PRIVACY_CONFIRMATIONS = "privacy.confirmations.v1"

SERVICES = ("venues", "registration", "replays", "notifications")

# Nine stops a season, keyed by stop id: nine partitions let up to nine
# consumer instances share a topic while each stop's events stay in order.
DEFAULT_PARTITIONS = 9

EVENT_TOPICS = (
    VENUES_STOPS,
    VENUES_TERRITORIES,
    REGISTRATION_REGISTRATIONS,
    REPLAYS_REPLAYS,
    NOTIFICATIONS_DELIVERIES,
    PRIVACY_REQUESTS,
    PRIVACY_CONFIRMATIONS,
)


def dlq(service: str) -> str:
    """The dead-letter topic of one consuming service."""
    return f"{service}.dlq"


ALL_TOPICS = EVENT_TOPICS + tuple(dlq(service) for service in SERVICES)
