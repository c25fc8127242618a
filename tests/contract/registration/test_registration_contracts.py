"""Registration consumes every venues stop event type (its published schemas are checked
with all the others in tests/contract/test_event_schemas.py)."""

from __future__ import annotations

from shared.contracts import venues
from shared.contracts.topics import PRIVACY_REQUESTS

from registration.config import Settings
from registration.main import create_app


async def test_every_venues_stop_event_is_consumed():
    app = create_app(Settings(service_name="registration-contract"))
    handled = set(app.state.runtime.consumer.event_types)
    assert {event.TYPE for event in venues.STOP_EVENTS} <= handled
    assert app.state.runtime.consumer.topics == sorted([venues.StopRegistrationOpenedV1.TOPIC, PRIVACY_REQUESTS])
