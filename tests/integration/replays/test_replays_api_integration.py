"""The replays service running on the real local broker and database: venues events in, HTTP API,
authorisation matrix, once-only publication (redelivered events and requests), batches, the
catalogue, and a scheduled publication firing in the running app."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient

from shared.auth import ensure_keypair, issue_token
from shared.contracts.base import CloudEventHeaders, Event
from shared.contracts.replays import ReplayPublishedV1, ReplayRepublishedV1, ReplayUnpublishedV1
from shared.contracts.topics import REPLAYS_REPLAYS, VENUES_STOPS, dlq
from shared.contracts.venues import (
    SessionAddedV1, SessionRemovedV1, SessionSnapshot, StopAcceptedV1, StopCancelledV1, StopHeldV1, StopSnapshot, Venue,
)
from shared.messaging.broker import ensure_topics
from shared.messaging.deadletters import RawRecord
from shared.testing.eventually import eventually
from shared.testing.http import running_app
from shared.testing.infra import unique_db
from replays.config import Settings
from replays.main import create_app

pytestmark = pytest.mark.integration

T0 = datetime(2022, 9, 30, 9, 0, tzinfo=UTC)


def make_settings(infra, keys: Path, service: str, db: str) -> Settings:
    return Settings(
        service_name=service, mongo_db=db, mongo_url=infra.mongo_url, kafka_bootstrap=infra.kafka_bootstrap,
        jwt_public_key_file=keys / "jwt_public.pem", relay_poll_seconds=0.2, timer_poll_seconds=0.2,
        consumer_retries=1,
    )


def token(keys: Path, settings: Settings, role: str, territory_id: str | None = None) -> dict[str, str]:
    jwt = issue_token((keys / "jwt_private.pem").read_bytes(), subject=f"{role}-{territory_id}", role=role,
                      territory_id=territory_id, region="Bretagne", issuer=settings.jwt_issuer,
                      audience=settings.jwt_audience)
    return {"Authorization": f"Bearer {jwt}"}


def stop_snapshot(stop_id: str, status: str, territory_id: str = "t-bzh", sequence: int = 1) -> StopSnapshot:
    return StopSnapshot(
        stop_id=stop_id, season=2022, region="Bretagne", territory_id=territory_id, city="Rennes",
        venue=Venue(name="Couvent des Jacobins"), date=date(2022, 9, 30), starts_at=T0,
        ends_at=T0 + timedelta(hours=8), theme="Mobilités", capacity=300, status=status, sequence=sequence,
    )


def session_snapshot(stop_id: str, session_id: str, kind: str = "round_table") -> SessionSnapshot:
    return SessionSnapshot(session_id=session_id, stop_id=stop_id, kind=kind, title="Table ronde",
                           starts_at=T0, ends_at=T0 + timedelta(hours=1))


def record(event: Event, headers: CloudEventHeaders | None = None) -> RawRecord:
    ce = headers or CloudEventHeaders(type=event.TYPE, source="venues", subject=event.subject())
    return RawRecord(VENUES_STOPS, 0, 0, event.key(), event.to_json(), ce.to_kafka())


async def send_to_kafka(infra, *events: Event) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            ce = CloudEventHeaders(type=event.TYPE, source="venues", subject=event.subject())
            await producer.send_and_wait(VENUES_STOPS, value=event.to_json(), key=event.key().encode(),
                                         headers=ce.to_kafka())
    finally:
        await producer.stop()


async def published_events(infra, replay_id: str) -> dict[str, set[str]]:
    """Distinct event ids per type on replays.replays.v1 for one replay (a relay retry may repeat a record)."""
    consumer = AIOKafkaConsumer(REPLAYS_REPLAYS, bootstrap_servers=infra.kafka_bootstrap, group_id=None)
    await consumer.start()
    found: dict[str, set[str]] = {}
    try:
        partitions = [TopicPartition(REPLAYS_REPLAYS, p) for p in consumer.partitions_for_topic(REPLAYS_REPLAYS)]
        consumer.unsubscribe()
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                for message in batch:
                    headers = {k: v.decode() for k, v in message.headers}
                    if json.loads(message.value).get("replay_id") == replay_id:
                        found.setdefault(headers["ce_type"], set()).add(headers["ce_id"])
    finally:
        await consumer.stop()
    return found


@pytest_asyncio.fixture(scope="module")
async def service(infra, tmp_path_factory):
    keys = tmp_path_factory.mktemp("replays-keys")
    ensure_keypair(keys)
    settings = make_settings(infra, keys, unique_db("replays"), unique_db("replays"))
    await ensure_topics(infra.kafka_bootstrap, [dlq(settings.service_name)], 1)
    app = create_app(settings)
    async with running_app(app) as client:
        client.runtime = app.state.runtime
        client.staff = token(keys, settings, "staff")
        client.host = token(keys, settings, "host", "t-bzh")
        client.other_host = token(keys, settings, "host", "t-other")
        yield client


def new_replay(stop_id: str, session_id: str | None = None, consent: bool = True, **extra) -> dict:
    return {"stop_id": stop_id, "session_id": session_id, "title": "Table ronde : mobilités rurales",
            "description": "Captation intégrale", "provider": "youtube",
            "url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "duration_s": 5400,
            "speakers": [{"name": "Jane Doe", "recording_consent": consent}], **extra}


async def test_venues_events_from_kafka_build_the_read_models(infra, service):
    await send_to_kafka(infra, StopAcceptedV1(stop_id="k-stop", stop=stop_snapshot("k-stop", "accepted")),
                        SessionAddedV1(stop_id="k-stop", session=session_snapshot("k-stop", "k-sess")))

    async def both_known():
        return (await service.runtime.db.stops.find_one({"_id": "k-stop"})
                and await service.runtime.db.sessions.find_one({"_id": "k-sess"}))

    await eventually(both_known, timeout=30)
    created = await service.post("/api/v1/replays", json=new_replay("k-stop", "k-sess"), headers=service.host)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["processing"], body["publication"], body["session_kind"]) == ("pending", "draft", "round_table")
    assert (body["city"], body["region"], body["theme"], body["season"]) == ("Rennes", "Bretagne", "Mobilités", 2022)
    assert body["embed_url"] == "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"


async def test_authorisation_matrix(service):
    consumer = service.runtime.consumer
    await consumer.process(record(StopHeldV1(stop_id="auth-stop", stop=stop_snapshot("auth-stop", "held"))))
    anonymous = await service.post("/api/v1/replays", json=new_replay("auth-stop"))
    assert anonymous.status_code == 401
    foreign = await service.post("/api/v1/replays", json=new_replay("auth-stop"), headers=service.other_host)
    assert foreign.status_code == 403
    replay_id = (await service.post("/api/v1/replays", json=new_replay("auth-stop"), headers=service.staff)).json()["id"]
    writes = [("patch", "", {"title": "Nouveau titre"}), ("put", "/chapters", [{"at_s": 0, "title": "Ouverture"}]),
              ("post", "/ready", None), ("post", "/schedule", {"publish_at": "2099-01-01T00:00:00Z"}),
              ("post", "/unschedule", None), ("post", "/publish", None), ("post", "/unpublish", None)]
    for method, suffix, body in writes:
        url = f"/api/v1/replays/{replay_id}{suffix}"
        kwargs = {"json": body} if body is not None else {}
        assert (await service.request(method, url, **kwargs)).status_code == 401, suffix
        assert (await service.request(method, url, headers=service.other_host, **kwargs)).status_code == 403, suffix
        own = await service.request(method, url, headers=service.host, **kwargs)
        assert own.status_code == 200, (suffix, own.text)
    staff_view = await service.post(f"/api/v1/replays/{replay_id}/publish", headers=service.staff)
    assert staff_view.json()["publication"] == "published"
    # The unpublished-list view is for managers only; hosts see their own territory.
    assert (await service.get("/api/v1/replays", params={"status": "draft"})).status_code == 401
    other = await service.get("/api/v1/replays", params={"status": "published", "stop_id": "auth-stop"},
                              headers=service.other_host)
    assert other.json()["total"] == 1


async def test_publication_refused_then_published_once_then_republished(infra, service):
    consumer = service.runtime.consumer
    await consumer.process(record(StopAcceptedV1(stop_id="p-stop", stop=stop_snapshot("p-stop", "accepted"))))
    replay = (await service.post("/api/v1/replays", json=new_replay("p-stop", consent=False),
                                 headers=service.host)).json()
    url = f"/api/v1/replays/{replay['id']}"
    refused = await service.post(f"{url}/publish", headers=service.host)
    assert refused.status_code == 409
    assert refused.json()["reasons"] == ["not_ready", "speaker_consent_missing:Jane Doe", "stop_not_held"]
    scheduled = await service.post(f"{url}/schedule", headers=service.host, json={"publish_at": "2099-01-01T00:00:00Z"})
    assert scheduled.status_code == 409 and "not_ready" in scheduled.json()["reasons"]

    assert (await service.post(f"{url}/ready", headers=service.host)).json()["processing"] == "ready"
    await service.patch(url, headers=service.host, json={"speakers": [{"name": "Jane Doe", "recording_consent": True}]})
    held = StopHeldV1(stop_id="p-stop", stop=stop_snapshot("p-stop", "held", sequence=2))
    ce = CloudEventHeaders(type=held.TYPE, source="venues", subject="p-stop")
    assert await consumer.process(record(held, ce)) == "handled"
    assert await consumer.process(record(held, ce)) == "duplicate"  # the same venues event redelivered

    first = await service.post(f"{url}/publish", headers=service.host)
    again = await service.post(f"{url}/publish", headers=service.host)  # the same request twice
    assert first.status_code == again.status_code == 200
    assert first.json()["first_published_at"] == again.json()["first_published_at"]
    assert (await service.post(f"{url}/unpublish", headers=service.host, json={"reason": "mauvais son"})).status_code == 200
    assert (await service.get(url)).status_code == 404  # no longer public
    assert (await service.post(f"{url}/publish", headers=service.host)).status_code == 200

    async def relayed():
        events = await published_events(infra, replay["id"])
        assert ReplayRepublishedV1.TYPE in events, events
        return events

    events = await eventually(relayed, timeout=20)
    assert len(events[ReplayPublishedV1.TYPE]) == 1
    assert len(events[ReplayRepublishedV1.TYPE]) == 1
    assert len(events[ReplayUnpublishedV1.TYPE]) == 1


async def test_catalogue_filters_batches_and_visibility(service):
    consumer = service.runtime.consumer
    await consumer.process(record(StopHeldV1(stop_id="c-stop", stop=stop_snapshot("c-stop", "held"))))
    await consumer.process(record(SessionAddedV1(stop_id="c-stop", session=session_snapshot("c-stop", "c-deb", "debate"))))
    ids = []
    for session_id in ("c-deb", None, None):
        created = await service.post("/api/v1/replays", json=new_replay("c-stop", session_id), headers=service.staff)
        ids.append(created.json()["id"])
    for replay_id in ids[:2]:
        await service.post(f"/api/v1/replays/{replay_id}/ready", headers=service.staff)
        await service.post(f"/api/v1/replays/{replay_id}/publish", headers=service.staff)

    public = (await service.get("/api/v1/replays", params={"stop_id": "c-stop"})).json()
    assert public["total"] == 2 and {item["id"] for item in public["items"]} == set(ids[:2])
    assert len({item["batch_id"] for item in public["items"]}) == 1
    assert all(item["city"] == "Rennes" and item["season"] == 2022 for item in public["items"])
    debates = (await service.get("/api/v1/replays", params={"stop_id": "c-stop", "session_kind": "debate"})).json()
    assert [item["id"] for item in debates["items"]] == [ids[0]]
    paged = (await service.get("/api/v1/replays", params={"stop_id": "c-stop", "page": 2, "page_size": 1})).json()
    assert (paged["total"], len(paged["items"]), paged["page"]) == (2, 1, 2)
    assert (await service.get("/api/v1/replays", params={"season": 1999})).status_code == 422
    assert (await service.get("/api/v1/replays", params={"season": 2021, "stop_id": "c-stop"})).json()["total"] == 0

    drafts_host = (await service.get("/api/v1/replays", params={"status": "draft", "stop_id": "c-stop"},
                                     headers=service.host)).json()
    assert [item["id"] for item in drafts_host["items"]] == [ids[2]]
    drafts_other = (await service.get("/api/v1/replays", params={"status": "draft", "stop_id": "c-stop"},
                                      headers=service.other_host)).json()
    assert drafts_other["total"] == 0
    assert (await service.get(f"/api/v1/replays/{ids[2]}")).status_code == 404
    assert (await service.get(f"/api/v1/replays/{ids[2]}", headers=service.other_host)).status_code == 404
    assert (await service.get(f"/api/v1/replays/{ids[2]}", headers=service.host)).status_code == 200
    assert (await service.get(f"/api/v1/replays/{ids[0]}")).json()["session_kind"] == "debate"

    await consumer.process(record(SessionRemovedV1(stop_id="c-stop", session=session_snapshot("c-stop", "c-deb", "debate"))))
    kept = (await service.get(f"/api/v1/replays/{ids[0]}")).json()
    assert (kept["stop_id"], kept["session_id"], kept["session_kind"]) == ("c-stop", None, "debate")


async def test_a_cancelled_stop_withdraws_its_scheduled_replay_once(service):
    consumer = service.runtime.consumer
    await consumer.process(record(StopHeldV1(stop_id="x-stop", stop=stop_snapshot("x-stop", "held"))))
    replay_id = (await service.post("/api/v1/replays", json=new_replay("x-stop"), headers=service.host)).json()["id"]
    await service.post(f"/api/v1/replays/{replay_id}/ready", headers=service.host)
    publish_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await service.post(f"/api/v1/replays/{replay_id}/schedule", headers=service.host,
                               json={"publish_at": publish_at})).status_code == 200
    cancelled = StopCancelledV1(stop_id="x-stop", stop=stop_snapshot("x-stop", "cancelled", sequence=2), reason="tempête")
    for _ in range(2):  # redelivered with another event id: the replay is withdrawn once
        await consumer.process(record(cancelled))
    replay = (await service.get(f"/api/v1/replays/{replay_id}", headers=service.host)).json()
    assert (replay["publication"], replay["withdrawn_reason"]) == ("unpublished", "stop_cancelled: tempête")
    db = service.runtime.db
    assert await db.timers.count_documents({"_id": f"replay-publish:{replay_id}"}) == 0
    refused = await service.post(f"/api/v1/replays/{replay_id}/publish", headers=service.host)
    assert refused.status_code == 409 and refused.json()["reasons"] == ["stop_not_held"]


async def test_a_scheduled_publication_fires_in_the_running_app(infra, service):
    await service.runtime.consumer.process(record(StopHeldV1(stop_id="t-stop", stop=stop_snapshot("t-stop", "held"))))
    replay_id = (await service.post("/api/v1/replays", json=new_replay("t-stop"), headers=service.host)).json()["id"]
    await service.post(f"/api/v1/replays/{replay_id}/ready", headers=service.host)
    publish_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    await service.post(f"/api/v1/replays/{replay_id}/schedule", headers=service.host, json={"publish_at": publish_at})

    async def public():
        response = await service.get(f"/api/v1/replays/{replay_id}")
        return response.status_code == 200 and response.json()["publication"] == "published"

    await eventually(public, timeout=15)


@pytest.mark.parametrize(("body", "field"), [
    (new_replay("v-stop", provider="vimeo"), "url"),
    (new_replay("v-stop", provider="url", url="javascript:alert(1)"), "url"),
    (new_replay("v-stop", provider="url", url="data:text/html,<script>"), "url"),
    (new_replay("unknown-stop"), "stop_id"),
    (new_replay("v-stop", session_id="unknown-session"), "session_id"),
    (new_replay("v-stop", status="published"), "status"),
    (new_replay("v-stop", duration_s=0), "duration_s"),
    (new_replay("v-stop", title="x" * 201), "title"),
])
async def test_bad_input_is_422_naming_the_field(service, body, field):
    await service.runtime.consumer.process(record(StopHeldV1(stop_id="v-stop", stop=stop_snapshot("v-stop", "held"))))
    response = await service.post("/api/v1/replays", json=body, headers=service.staff)
    assert response.status_code == 422, response.text
    assert field in response.json()["fields"]


async def test_bad_input_on_an_existing_replay(service):
    await service.runtime.consumer.process(record(StopHeldV1(stop_id="v-stop", stop=stop_snapshot("v-stop", "held"))))
    replay_id = (await service.post("/api/v1/replays", json=new_replay("v-stop"), headers=service.staff)).json()["id"]
    url = f"/api/v1/replays/{replay_id}"
    outside = await service.put(f"{url}/chapters", headers=service.staff, json=[{"at_s": 5400, "title": "fin"}])
    assert outside.status_code == 422 and "chapters.0.at_s" in outside.json()["fields"]
    past = await service.post(f"{url}/schedule", headers=service.staff, json={"publish_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422 and "publish_at" in past.json()["fields"]
    naive = await service.post(f"{url}/schedule", headers=service.staff, json={"publish_at": "2099-01-01T00:00:00"})
    assert naive.status_code == 422 and "publish_at" in naive.json()["fields"]
    null_title = await service.patch(url, headers=service.staff, json={"title": None})
    assert null_title.status_code == 422
    assert (await service.post("/api/v1/replays/nope/publish", headers=service.staff)).status_code == 404
    assert (await service.get("/api/v1/replays/nope")).status_code == 404


async def test_a_scheduled_publication_survives_a_restart_and_fires_once(infra, tmp_path):
    ensure_keypair(tmp_path)
    settings = make_settings(infra, tmp_path, unique_db("replays"), unique_db("replays"))
    await ensure_topics(infra.kafka_bootstrap, [dlq(settings.service_name)], 1)
    staff = token(tmp_path, settings, "staff")

    first = create_app(settings)
    async with running_app(first) as client:
        await first.state.runtime.consumer.process(record(StopHeldV1(stop_id="r-stop", stop=stop_snapshot("r-stop", "held"))))
        replay_id = (await client.post("/api/v1/replays", json=new_replay("r-stop"), headers=staff)).json()["id"]
        await client.post(f"/api/v1/replays/{replay_id}/ready", headers=staff)
        publish_at = datetime.now(UTC) + timedelta(seconds=5)
        scheduled = await client.post(f"/api/v1/replays/{replay_id}/schedule", headers=staff,
                                      json={"publish_at": publish_at.isoformat()})
        assert scheduled.json()["publication"] == "scheduled"

    probe = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    try:
        db = probe[settings.mongo_db]
        assert datetime.now(UTC) < publish_at, "the first app took too long to stop for this test to mean anything"
        assert (await db.replays.find_one({"_id": replay_id}))["publication"] == "scheduled"
        assert await db.timers.count_documents({"_id": f"replay-publish:{replay_id}"}) == 1
    finally:
        await probe.close()

    second = create_app(settings)
    async with running_app(second) as client:
        async def public():
            response = await client.get(f"/api/v1/replays/{replay_id}")
            return response.status_code == 200 and response.json()

        replay = await eventually(public, timeout=20)
        assert replay["publication"] == "published" and replay["batch_id"]
        assert datetime.fromisoformat(replay["first_published_at"]) >= publish_at.replace(microsecond=0)

        async def relayed():
            events = await published_events(infra, replay_id)
            assert ReplayPublishedV1.TYPE in events, events
            return events

        events = await eventually(relayed, timeout=20)
        assert len(events[ReplayPublishedV1.TYPE]) == 1
        assert await second.state.runtime.db.timers.count_documents({}) == 0
