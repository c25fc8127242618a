"""Registration's event contracts: published versions never change shape (committed JSON
Schema snapshots), and the service consumes every venues stop event type."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shared.contracts import registration, venues
from shared.contracts.topics import REGISTRATION_REGISTRATIONS

from registration.config import Settings
from registration.main import create_app

SCHEMAS = Path(__file__).parent / "schemas"


@pytest.mark.parametrize("event", registration.EVENTS, ids=lambda e: e.TYPE)
def test_published_event_schema_matches_its_snapshot(event):
    """Set REGISTRATION_WRITE_SCHEMAS=1 once to record a NEW event type; never to change an old one."""
    assert event.TOPIC == REGISTRATION_REGISTRATIONS
    path = SCHEMAS / f"{event.TYPE}.json"
    schema = event.model_json_schema()
    if os.environ.get("REGISTRATION_WRITE_SCHEMAS") and not path.exists():
        path.write_text(json.dumps(schema, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    assert path.exists(), f"no committed schema for {event.TYPE}"
    assert schema == json.loads(path.read_text()), f"{event.TYPE} changed: publish a V2 beside it instead"


async def test_every_venues_stop_event_is_consumed():
    app = create_app(Settings(service_name="registration-contract"))
    routes = app.state.runtime.consumer._routes
    assert {event.TYPE for event in venues.STOP_EVENTS} <= set(routes)
    assert app.state.runtime.consumer.topics == [venues.StopRegistrationOpenedV1.TOPIC]
