"""Kafka in (venues stop events) and durable timers, wired to the reactions.

Out: every event is written to the outbox by the handlers and published on
``registration.registrations.v1`` (key = stop id) by the shared relay.
"""

from __future__ import annotations

from shared.contracts.venues import STOP_EVENTS
from shared.runtime import ServiceRuntime

from registration.places import NO_SHOW, OFFER_EXPIRY
from registration.reactions import StopReactions


def wire(runtime: ServiceRuntime, reactions: StopReactions) -> None:
    for model in STOP_EVENTS:
        runtime.consumer.on(model)(reactions.on_stop_event)
    runtime.on_timer(OFFER_EXPIRY, reactions.on_offer_expired)
    runtime.on_timer(NO_SHOW, reactions.on_no_show_due)
