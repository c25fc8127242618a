"""Kafka in: which consumed event goes to which handler; timers of the service."""

from __future__ import annotations

from notifications.fanout import DIGEST_TIMER, FanOut
from notifications.handlers import REMINDER_TIMER, EventHandlers
from shared.contracts import registration, replays, venues
from shared.runtime import ServiceRuntime

# Registration events that only update the attendee read model (no email of their own).
_SILENT_REGISTRATION = (registration.OfferAcceptedV1, registration.OfferDeclinedV1, registration.CheckedInV1,
                        registration.NoShowV1)
_EMAILED_REGISTRATION = (registration.RegistrationConfirmedV1, registration.RegistrationWaitlistedV1,
                         registration.OfferMadeV1, registration.OfferExpiredV1, registration.RegistrationCancelledV1,
                         registration.RegistrationTransferredV1)


def register_consumers(runtime: ServiceRuntime, handlers: EventHandlers, fanout: FanOut) -> None:
    consumer = runtime.consumer
    for model in (*_EMAILED_REGISTRATION, *_SILENT_REGISTRATION):
        consumer.on(model)(handlers.on_registration)
    for model in venues.STOP_EVENTS:
        if model is venues.StopRegistrationOpenedV1:
            consumer.on(model)(fanout.on_registration_opened)
        else:
            consumer.on(model)(handlers.on_stop)
    consumer.on(replays.ReplayPublishedV1)(fanout.on_replay_published)
    # ReplayRepublishedV1 and the other replay events are acknowledged and ignored: never a new notification.
    runtime.on_timer(REMINDER_TIMER, handlers.on_reminder_due)
    runtime.on_timer(DIGEST_TIMER, fanout.on_digest_due)
