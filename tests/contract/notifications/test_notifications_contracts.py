"""What notifications publishes and which upstream events it listens to."""

from __future__ import annotations

from notifications.fanout import FanOut
from notifications.handlers import EventHandlers
from notifications.config import Settings
from notifications.domain import WEBHOOK_EVENT_TYPES
from notifications.messaging import register_consumers
from shared.contracts import notifications, registration, replays, topics, venues


class FakeRuntime:
    def __init__(self) -> None:
        from shared.messaging.consumer import EventConsumer

        self.consumer = EventConsumer(service="notifications", uow=None, dead_letters=None)
        self.timers: dict[str, object] = {}

    def on_timer(self, kind, handler) -> None:
        self.timers[kind] = handler


def test_published_events_are_keyed_by_their_record_and_carry_no_email():
    confirmed = notifications.FollowerConfirmedV1(follower_id="f1", regions=["NOR"], topics=["replays"])
    disabled = notifications.WebhookEndpointDisabledV1(endpoint_id="e1", url="https://x", reason="HTTP 500", failures=3)
    assert (confirmed.key(), disabled.key()) == ("f1", "e1")
    for event in notifications.EVENTS:
        assert event.TOPIC == topics.NOTIFICATIONS_DELIVERIES and event.TYPE.startswith("notifications.")
        assert "email" not in event.model_fields


def test_consumes_every_notifying_event_and_never_a_republication():
    runtime = FakeRuntime()
    settings = Settings()
    handlers = EventHandlers(settings)
    register_consumers(runtime, handlers, FanOut(settings, handlers))
    routed = set(runtime.consumer.event_types)
    assert replays.ReplayPublishedV1.TYPE in routed and replays.ReplayRepublishedV1.TYPE not in routed
    assert {e.TYPE for e in venues.STOP_EVENTS} <= routed
    assert {e.TYPE for e in registration.EVENTS if e.TYPE.startswith("registration.registration")} <= routed
    assert set(runtime.consumer.topics) == {topics.VENUES_STOPS, topics.REGISTRATION_REGISTRATIONS, topics.REPLAYS_REPLAYS}
    assert set(runtime.timers) == {"reminder", "replay_digest"}
    # Webhooks only ever carry public events.
    assert WEBHOOK_EVENT_TYPES <= {e.TYPE for e in (*venues.STOP_EVENTS, *replays.EVENTS)}
