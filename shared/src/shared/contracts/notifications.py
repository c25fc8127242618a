"""Events published by notifications on ``notifications.deliveries.v1``.

Keyed by the follower or endpoint id. They carry no email address: nothing
downstream needs one, and it keeps personal data inside notifications.
"""

from __future__ import annotations

from typing import ClassVar

from shared.contracts import topics
from shared.contracts.base import Event


class FollowerConfirmedV1(Event):
    """A viewer confirmed (double opt-in) that they follow these regions and topics."""

    TOPIC: ClassVar[str] = topics.NOTIFICATIONS_DELIVERIES
    TYPE: ClassVar[str] = "notifications.follower.confirmed.v1"
    follower_id: str
    regions: list[str]
    topics: list[str]

    def key(self) -> str:
        return self.follower_id

    def subject(self) -> str | None:
        return self.follower_id


class WebhookEndpointDisabledV1(Event):
    """A partner endpoint kept failing and receives nothing more until registered again."""

    TOPIC: ClassVar[str] = topics.NOTIFICATIONS_DELIVERIES
    TYPE: ClassVar[str] = "notifications.webhook_endpoint.disabled.v1"
    endpoint_id: str
    url: str
    reason: str
    failures: int

    def key(self) -> str:
        return self.endpoint_id

    def subject(self) -> str | None:
        return self.endpoint_id


EVENTS = (FollowerConfirmedV1, WebhookEndpointDisabledV1)
