"""Kafka in and out.

In: every registration event carries the stop's occupancy after the change; the
latest figures per stop feed the capacity rule (never below the confirmed count).
Out: stop and territory events go through the outbox (handlers' ``tx.emit``); the
publishers declared here document them in /asyncapi.
"""

from __future__ import annotations

from shared.contracts import registration, topics
from shared.contracts.base import CloudEventHeaders
from shared.contracts.venues import StopSnapshot, TerritorySnapshot
from shared.logging import get_logger
from shared.runtime import ServiceRuntime
from shared.uow import Tx

from venues.handlers import VenuesService

log = get_logger(__name__)


def register_consumers(runtime: ServiceRuntime, service: VenuesService) -> None:
    async def on_registration_event(event: registration._RegistrationEvent, tx: Tx, ce: CloudEventHeaders) -> None:
        occupancy = getattr(event, "occupancy", None)
        if occupancy is None:
            return
        if not await service.record_occupancy(tx, event.stop_id, occupancy, ce.time):
            log.info("occupancy.stale_event_skipped", stop_id=event.stop_id)

    for model in registration.EVENTS:
        runtime.consumer.on(model)(on_registration_event)


def declare_publishers(runtime: ServiceRuntime) -> None:
    runtime.broker.publisher(topics.VENUES_STOPS, title="venues.stops.v1", schema=StopSnapshot,
                             description="Stop lifecycle and programme events, key = stop id (via the outbox)")
    runtime.broker.publisher(topics.VENUES_TERRITORIES, title="venues.territories.v1", schema=TerritorySnapshot,
                             description="Territory events, key = territory id (via the outbox)")
