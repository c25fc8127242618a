"""What replays publishes matches the committed schemas and reads back; what it consumes is all of
venues' stop and session events on venues.stops.v1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from shared.contracts.registry import by_type
from shared.contracts.replays import EVENTS, Chapter
from shared.contracts.schemas import snapshot_path
from shared.contracts.topics import VENUES_STOPS
from shared.contracts.venues import SESSION_EVENTS, STOP_EVENTS
from replays.config import Settings
from replays.domain import Replay, Speaker, StopView
from replays.handlers import PUBLISH_TIMER, snapshot
from replays.main import create_app

NOW = datetime(2022, 10, 1, 12, 0, tzinfo=UTC)
EXTRA_FIELDS = {
    "reason": "codec", "publish_at": NOW + timedelta(days=1), "batch_id": "b1", "published_at": NOW,
    "reasons": ["not_ready"],
}


def sample_replay() -> tuple[Replay, StopView]:
    replay = Replay.new(stop_id="s1", session=None, title="Plénière d'ouverture", description="",
                        provider="peertube", url="https://tube.example.org/w/kkGMgK9ZtnKfYAgnEtQxbv",
                        duration_s=3600, speakers=[Speaker(name="Jane Doe", recording_consent=True)], now=NOW)
    replay.set_chapters([Chapter(at_s=0, title="Accueil"), Chapter(at_s=600, title="Débat")], NOW)
    stop = StopView(stop_id="s1", season=2022, region="Bretagne", city="Rennes", theme="Mobilités",
                    territory_id="t1", status="held")
    return replay, stop


@pytest.mark.parametrize("cls", EVENTS, ids=lambda c: c.TYPE)
def test_published_events_match_their_committed_schema_and_read_back(cls):
    replay, stop = sample_replay()
    fields = {name: value for name, value in EXTRA_FIELDS.items() if name in cls.model_fields}
    event = cls(replay_id=replay.id, stop_id=replay.stop_id, replay=snapshot(replay, stop), **fields)
    body = json.loads(event.to_json())
    schema = json.loads(snapshot_path(cls).read_text())
    jsonschema.validate(body, schema)
    assert by_type()[cls.TYPE].model_validate(body) == event
    assert event.key() == "s1" and event.subject() == replay.id
    assert body["replay"]["city"] == "Rennes" and body["replay"]["embed_url"].endswith("/videos/embed/kkGMgK9ZtnKfYAgnEtQxbv")


async def test_the_service_consumes_every_stop_and_session_event_and_handles_its_timer():
    app = create_app(Settings(mongo_url="mongodb://127.0.0.1:1/?directConnection=true"))
    runtime = app.state.runtime
    try:
        assert runtime.consumer.topics == sorted([VENUES_STOPS, "privacy.requests.v1"])
        handled = {model.TYPE for model in (*STOP_EVENTS, *SESSION_EVENTS)}
        assert handled <= set(runtime.consumer.event_types)
        assert PUBLISH_TIMER in runtime.timer_handlers
    finally:
        await runtime.client.close()
