"""Producer side of the venues contract: the real handlers emit every declared event type,
each payload valid against its committed JSON Schema, keyed by its aggregate id, and the
snapshot is enough to rebuild the stop's calendar (what notifications does)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import jsonschema
from argon2 import PasswordHasher
from icalendar import Calendar

from shared.contracts.registration import Occupancy
from shared.contracts.venues import EVENTS, StopCancelledV1
from venues.accounts import Passwords
from venues.config import Settings
from venues.handlers import SYSTEM, VenuesService
from shared.calendar import stop_calendar
from venues.memory import MemoryRepository, MemoryState, MemoryUnitOfWork

SCHEMAS = Path(__file__).resolve().parents[3] / "shared" / "schemas"
NOW = datetime(2031, 1, 10, 12, tzinfo=UTC)


async def every_use_case(tmp_path: Path) -> MemoryUnitOfWork:
    state = MemoryState()
    uow = MemoryUnitOfWork(state)
    clock = [NOW]
    service = VenuesService(uow, lambda tx: MemoryRepository(state), settings=Settings(keys_dir=tmp_path),
                            signing_key=b"", passwords=Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)),
                            clock=lambda: clock[0])
    territory = await service.create_territory(SYSTEM, name="Quimperlé Communauté", kind="agglomeration",
                                               region="BRE")
    await service.update_territory(SYSTEM, territory.id, {"contact_name": "Accueil"})
    common = dict(season=2031, region="BRE", territory_id=territory.id, city="Quimperlé",
                  venue={"name": "Espace", "lat": 47.9, "lon": -3.5}, starts_at="09:00", ends_at="13:00",
                  theme="Ruralité", capacity=50)
    rejected = await service.propose_stop(SYSTEM, date=date(2031, 4, 10), **common)
    await service.act(SYSTEM, rejected.id, "reject", reason="date")
    stop = await service.propose_stop(SYSTEM, date=date(2031, 5, 15), **common)
    session = await service.add_session(SYSTEM, stop.id, kind="opening", title="Ouverture", starts_at="09:00",
                                        ends_at="09:30", speakers=[{"name": "Ada"}])
    await service.update_session(SYSTEM, stop.id, session.id, {"title": "Accueil et ouverture"})
    for action in ("accept", "open_registration"):
        await service.act(SYSTEM, stop.id, action)
    await service.record_occupancy(None, stop.id, Occupancy(capacity=50, confirmed=10), NOW)  # type: ignore[arg-type]
    await service.edit_stop(SYSTEM, stop.id, {"capacity": 60, "theme": "Ruralité numérique"})
    await service.postpone(SYSTEM, stop.id, date=date(2031, 5, 22), starts_at="09:00", ends_at="13:00")
    await service.remove_session(SYSTEM, stop.id, session.id)
    await service.act(SYSTEM, stop.id, "close_registration")
    clock[0] = NOW + timedelta(days=200)  # after the stop: it can be held
    for action in ("mark_held", "archive"):
        await service.act(SYSTEM, stop.id, action)
    other = await service.propose_stop(SYSTEM, date=date(2031, 9, 11), **common)  # the region is free again
    await service.act(SYSTEM, other.id, "accept")
    await service.act(SYSTEM, other.id, "cancel", reason="Tempête")
    return uow


async def test_every_event_type_is_emitted_and_matches_its_schema(tmp_path):
    uow = await every_use_case(tmp_path)
    assert {type(e).TYPE for e in uow.committed} == {cls.TYPE for cls in EVENTS}
    for event in uow.committed:
        schema = json.loads((SCHEMAS / f"{event.TYPE}.json").read_text())
        jsonschema.validate(json.loads(event.to_json()), schema)
        assert event.TOPIC == schema["x-topic"]
        aggregate = getattr(event, "stop_id", None) or event.territory_id
        assert event.key() == aggregate


async def test_a_consumer_rebuilds_the_calendar_from_the_event_alone(tmp_path):
    uow = await every_use_case(tmp_path)
    [cancelled] = [e for e in uow.committed if isinstance(e, StopCancelledV1)]
    received = StopCancelledV1.model_validate_json(cancelled.to_json())
    [event] = Calendar.from_ical(stop_calendar(received.stop, method="CANCEL")).walk("VEVENT")
    assert str(event["UID"]) == f"stop-{received.stop_id}@intercotour"
    assert event["STATUS"] == "CANCELLED" and event["SEQUENCE"] == received.stop.sequence == 1
