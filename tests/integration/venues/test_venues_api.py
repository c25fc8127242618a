"""The venues app on the real local broker and database: HTTP contract, authorisation,
events through the outbox, the occupancy read model fed from Kafka, calendars."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from icalendar import Calendar

from shared.contracts import topics
from shared.contracts.base import CloudEventHeaders
from shared.contracts.registration import Occupancy, RegistrationConfirmedV1
from shared.contracts.venues import EVENTS as VENUES_EVENTS
from shared.testing.eventually import eventually
from shared.testing.http import running_app
from shared.testing.infra import unique_db
from venues.config import Settings
from venues.main import create_app

pytestmark = pytest.mark.integration

SEASON = datetime.now(UTC).year + 1
DAY = date(SEASON, 5, 13)


@pytest.fixture(scope="module")
async def venues(infra, tmp_path_factory):
    keys = tmp_path_factory.mktemp("venues-keys")
    settings = Settings(mongo_url=infra.mongo_url, mongo_db=unique_db("venues"), kafka_bootstrap=infra.kafka_bootstrap,
                        keys_dir=keys, jwt_public_key_file=keys / "jwt_public.pem", relay_poll_seconds=0.2,
                        consumer_retries=1, login_attempts_per_account=5)
    app = create_app(settings)
    async with running_app(app) as client:
        client.app = app
        yield client


async def login(client, email: str, password: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
async def people(venues):
    """Staff, and a territory with its host in Bretagne and in Normandie."""
    staff = await login(venues, "admin@intercotour.local", "intercotour-admin")
    result = {"staff": staff}
    for region in ("BRE", "NOR"):
        territory = await venues.post("/api/v1/territories", headers=staff, json={
            "name": f"Territoire {region}", "kind": "agglomeration", "region": region.lower(),
            "contact": {"name": "Accueil", "email": f"contact-{region.lower()}@example.org"}})
        assert territory.status_code == 201, territory.text
        assert territory.json()["region"] == region and territory.json()["contact"]["name"] == "Accueil"
        tid = territory.json()["id"]
        email = f"host-{region.lower()}@example.org"
        host = await venues.post(f"/api/v1/territories/{tid}/hosts", headers=staff,
                                 json={"email": email, "password": "host-password", "name": f"Hôte {region}"})
        assert host.status_code == 201, host.text
        result[region] = {"territory_id": tid, "headers": await login(venues, email, "host-password")}
    return result


def stop_body(territory_id: str, region_code: str, **overrides) -> dict:
    body = {"season": SEASON, "region": region_code, "territory_id": territory_id, "city": "Quimperlé",
            "venue": {"name": "Espace Benoîte Groult", "address": "Rue de Quimper", "lat": 47.87, "lon": -3.55,
                      "accessibility": "Plain-pied"},
            "date": DAY.isoformat(), "starts_at": "09:00", "ends_at": "13:00", "theme": "Ruralité", "capacity": 120}
    return {**body, **overrides}


async def published(venues, key: str, count: int) -> list[tuple[str, dict]]:
    """(ce_type, payload) of the events the relay published on venues.stops.v1 under ``key``, in order."""
    consumer = AIOKafkaConsumer(topics.VENUES_STOPS, bootstrap_servers=venues.app.state.runtime.settings.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    seen: list[tuple[str, dict]] = []
    try:
        for _ in range(40):
            batches = await consumer.getmany(timeout_ms=500)
            seen += [(dict(r.headers)["ce_type"].decode(), json.loads(r.value))
                     for batch in batches.values() for r in batch if r.key == key.encode()]
            if len(seen) >= count and not batches:
                break
    finally:
        await consumer.stop()
    return seen


async def test_login_answers(venues, people):
    response = await venues.post("/api/v1/auth/login", json={"email": "admin@intercotour.local",
                                                              "password": "intercotour-admin"})
    body = response.json()
    assert body["role"] == "staff" and body["token_type"] == "bearer" and body["territory_id"] is None
    assert body["expires_in"] > 0
    wrong = [await venues.post("/api/v1/auth/login", json={"email": e, "password": p}) for e, p in
             (("admin@intercotour.local", "nope"), ("ghost@intercotour.local", "intercotour-admin"))]
    assert [r.status_code for r in wrong] == [401, 401]
    assert wrong[0].json()["detail"] == wrong[1].json()["detail"] == "wrong email or password"

    guesses = [(await venues.post("/api/v1/auth/login", json={"email": "Brute@example.org", "password": f"guess{i}"}))
               for i in range(6)]
    assert [r.status_code for r in guesses] == [401] * 5 + [429]
    assert int(guesses[-1].headers["Retry-After"]) > 0


async def test_authorisation_matrix(venues, people):
    bre, nor, staff = people["BRE"], people["NOR"], people["staff"]
    created = await venues.post("/api/v1/stops", headers=bre["headers"], json=stop_body(bre["territory_id"], "BRE"))
    assert created.status_code == 201, created.text
    stop = created.json()
    sid = stop["id"]
    assert stop["status"] == "proposed" and stop["starts_at"] == f"{DAY.isoformat()}T09:00:00+02:00"

    session = {"kind": "opening", "title": "Ouverture", "starts_at": "09:00", "ends_at": "09:30"}
    writes = [
        ("post", "/api/v1/stops", stop_body(bre["territory_id"], "BRE", city="Ailleurs")),
        ("patch", f"/api/v1/stops/{sid}", {"theme": "Détourné"}),
        *[("post", f"/api/v1/stops/{sid}/{a}", None) for a in
          ("accept", "open-registration", "close-registration", "mark-held", "archive")],
        ("post", f"/api/v1/stops/{sid}/reject", {"reason": "x"}),
        ("post", f"/api/v1/stops/{sid}/cancel", {"reason": "x"}),
        ("post", f"/api/v1/stops/{sid}/postpone", {"date": (DAY + timedelta(days=7)).isoformat(),
                                                   "starts_at": "09:00", "ends_at": "13:00"}),
        ("post", f"/api/v1/stops/{sid}/sessions", session),
        ("patch", f"/api/v1/stops/{sid}/sessions/any", {"title": "x"}),
        ("delete", f"/api/v1/stops/{sid}/sessions/any", None),
        ("post", "/api/v1/territories", {"name": "T", "kind": "city", "region": "BRE"}),
        ("patch", f"/api/v1/territories/{bre['territory_id']}", {"name": "T"}),
        ("post", f"/api/v1/territories/{bre['territory_id']}/hosts",
         {"email": "x@example.org", "password": "0123456789", "name": "X"}),
    ]
    for method, path, body in writes:
        kwargs = {"json": body} if body is not None else {}
        anonymous = await venues.request(method.upper(), path, **kwargs)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        other_host = await venues.request(method.upper(), path, headers=nor["headers"], **kwargs)
        assert other_host.status_code == 403, (method, path, other_host.text)

    own_accept = await venues.post(f"/api/v1/stops/{sid}/accept", headers=bre["headers"])
    assert own_accept.status_code == 403
    assert (await venues.post(f"/api/v1/stops/{sid}/accept", headers=staff)).json()["status"] == "accepted"
    opened = await venues.post(f"/api/v1/stops/{sid}/open-registration", headers=bre["headers"])
    assert opened.json()["status"] == "registration_open"
    forged = {"Authorization": bre["headers"]["Authorization"][:-4] + "AAAA"}
    assert (await venues.patch(f"/api/v1/stops/{sid}", headers=forged, json={"theme": "x"})).status_code == 401
    assert (await venues.get(f"/api/v1/stops/{sid}")).status_code == 200  # reading is public
    assert (await venues.get("/api/v1/dead-letters", headers=bre["headers"])).status_code == 403
    assert (await venues.get("/api/v1/dead-letters", headers=staff)).status_code == 200
    renamed = await venues.patch(f"/api/v1/territories/{bre['territory_id']}", headers=staff,
                                 json={"contact": {"name": "Nouvel accueil"}})
    assert renamed.json()["contact"] == {"name": "Nouvel accueil", "email": ""}
    moved = await venues.patch(f"/api/v1/territories/{bre['territory_id']}", headers=staff, json={"region": "NOR"})
    assert moved.status_code == 422 and "region" in moved.json()["fields"]


async def test_bad_input_is_422_naming_the_field(venues, people):
    bre = people["BRE"]
    cases = [
        ({"status": "held"}, "status"),
        ({"region": "ZZ"}, "region"),
        ({"date": "2020-05-14", "season": 2020}, "date"),
        ({"starts_at": "14:00", "ends_at": "10:00"}, "ends_at"),
        ({"capacity": 0}, "capacity"),
        ({"theme": "x" * 301}, "theme"),
        ({"venue": {"name": "Salle", "rooms": 3}}, "venue.rooms"),
        ({"starts_at": "noon"}, "starts_at"),
    ]
    for overrides, field in cases:
        response = await venues.post("/api/v1/stops", headers=bre["headers"],
                                     json=stop_body(bre["territory_id"], "BRE", **overrides))
        assert response.status_code == 422, (overrides, response.text)
        assert field in response.json()["fields"], (overrides, response.json())
    listing = await venues.get("/api/v1/stops", params={"region": "ZZ"})
    assert listing.status_code == 422 and "region" in listing.json()["fields"]


async def test_lifecycle_events_and_conflicts(venues, people):
    nor, staff = people["NOR"], people["staff"]
    body = stop_body(nor["territory_id"], "NOR", city="Rouen", capacity=3)
    stop = (await venues.post("/api/v1/stops", headers=nor["headers"], json=body)).json()
    sid = stop["id"]
    twice = await venues.post("/api/v1/stops", headers=nor["headers"], json=body)
    assert twice.status_code == 409 and twice.json()["error"] == "region_season_taken"

    too_early = await venues.post(f"/api/v1/stops/{sid}/open-registration", headers=nor["headers"])
    assert too_early.status_code == 409
    assert too_early.json()["current_state"] == "proposed"
    assert too_early.json()["allowed"] == ["accepted", "rejected"]

    for path in ("accept", "open-registration"):
        assert (await venues.post(f"/api/v1/stops/{sid}/{path}", headers=staff)).status_code == 200
    patched = await venues.patch(f"/api/v1/stops/{sid}", headers=nor["headers"], json={"status": "held"})
    assert patched.status_code == 422 and patched.json()["fields"] == {"status": "unknown field (not allowed)"}
    assert (await venues.patch(f"/api/v1/stops/{sid}", headers=nor["headers"], json={"theme": None})).status_code == 422

    # registration tells venues how many are confirmed; capacity cannot go below it
    event = RegistrationConfirmedV1(registration_id="r1", stop_id=sid, email="a@example.org", status="confirmed",
                                    check_in_code="C1", occupancy=Occupancy(capacity=3, confirmed=3))
    producer = AIOKafkaProducer(bootstrap_servers=venues.app.state.runtime.settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topics.REGISTRATION_REGISTRATIONS, value=event.to_json(), key=sid.encode(),
                                     headers=CloudEventHeaders(type=event.TYPE, source="registration").to_kafka())
    finally:
        await producer.stop()
    db = venues.app.state.runtime.db
    await eventually(lambda: db.occupancy.find_one({"_id": sid}), timeout=30)
    shrink = await venues.patch(f"/api/v1/stops/{sid}", headers=nor["headers"], json={"capacity": 2})
    assert shrink.status_code == 409
    assert (shrink.json()["capacity"], shrink.json()["confirmed"]) == (2, 3)
    grown = await venues.patch(f"/api/v1/stops/{sid}", headers=nor["headers"], json={"capacity": 10})
    assert grown.json()["capacity"] == 10

    cancelled = await venues.post(f"/api/v1/stops/{sid}/cancel", headers=staff, json={"reason": "Tempête"})
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancel_reason"] == "Tempête"

    again = await venues.post("/api/v1/stops", headers=nor["headers"], json=body)  # the region is free again
    assert again.status_code == 201, again.text
    rejected = await venues.post(f"/api/v1/stops/{again.json()['id']}/reject", headers=staff)  # reason optional
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"

    records = await published(venues, sid, 5)
    assert [ce_type for ce_type, _ in records] == [
        "venues.stop.proposed.v1", "venues.stop.accepted.v1", "venues.stop.registration_opened.v1",
        "venues.stop.capacity_changed.v1", "venues.stop.cancelled.v1"]
    by_type = {cls.TYPE: cls for cls in VENUES_EVENTS}
    for ce_type, payload in records:
        assert by_type[ce_type].model_validate(payload).stop.stop_id == sid
    assert records[3][1]["previous_capacity"] == 3 and records[3][1]["stop"]["capacity"] == 10
    assert records[-1][1]["stop"]["sequence"] == 1 and records[-1][1]["reason"] == "Tempête"


async def test_programme_postponement_and_calendars(venues, people):
    bre, staff = people["BRE"], people["staff"]
    listing = (await venues.get("/api/v1/stops", params={"season": SEASON, "region": "BRE"})).json()["items"]
    [stop] = [s for s in listing if s["status"] not in ("rejected", "cancelled")]
    sid = stop["id"]
    add = f"/api/v1/stops/{sid}/sessions"
    opening = await venues.post(add, headers=bre["headers"], json={
        "kind": "opening", "title": "Ouverture", "starts_at": "09:00", "ends_at": "09:30", "room": "Grande salle",
        "speakers": [{"name": "Ada Lovelace", "role": "Présidente", "organisation": "Territoire BRE"}]})
    assert opening.status_code == 201, opening.text
    clash = await venues.post(add, headers=bre["headers"], json={
        "kind": "debate", "title": "Débat", "starts_at": "09:15", "ends_at": "10:00", "room": "grande salle"})
    assert clash.status_code == 409 and clash.json()["error"] == "room_overlap"
    outside = await venues.post(add, headers=bre["headers"], json={
        "kind": "debate", "title": "Débat", "starts_at": "12:30", "ends_at": "13:30"})
    assert outside.status_code == 422
    debate = await venues.post(add, headers=bre["headers"], json={
        "kind": "debate", "title": "Débat", "starts_at": "09:30", "ends_at": "10:30", "room": "Grande salle"})
    moved = await venues.patch(f"{add}/{debate.json()['id']}", headers=bre["headers"], json={"ends_at": "11:00"})
    assert moved.status_code == 200 and moved.json()["ends_at"].endswith("T11:00:00+02:00")
    assert (await venues.delete(f"{add}/{debate.json()['id']}", headers=bre["headers"])).status_code == 204

    new_day = DAY + timedelta(days=14)
    postponed = await venues.post(f"/api/v1/stops/{sid}/postpone", headers=staff, json={
        "date": new_day.isoformat(), "starts_at": "10:00", "ends_at": "14:00"})
    assert postponed.status_code == 200, postponed.text
    body = postponed.json()
    assert body["status"] == "postponed" and body["sequence"] == 1
    assert [s["starts_at"] for s in body["sessions"]] == [f"{new_day.isoformat()}T10:00:00+02:00"]
    assert (await venues.post(f"/api/v1/stops/{sid}/open-registration", headers=bre["headers"])).status_code == 200

    ics = await venues.get(f"/api/v1/stops/{sid}.ics")
    assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
    [event] = Calendar.from_ical(ics.content).walk("VEVENT")
    assert str(event["UID"]) == f"stop-{sid}@intercotour" and event["SEQUENCE"] == 1
    assert event["DTSTART"].params["TZID"] == "Europe/Paris"
    assert event.decoded("DTSTART") == datetime(new_day.year, new_day.month, new_day.day, 8, tzinfo=UTC)

    feed = await venues.get("/api/v1/calendar.ics", params={"season": SEASON})
    uids = {str(e["UID"]): e for e in Calendar.from_ical(feed.content).walk("VEVENT")}
    assert f"stop-{sid}@intercotour" in uids
    cancelled = [e for e in uids.values() if e["STATUS"] == "CANCELLED"]
    assert len(cancelled) == 1  # the Normandie stop cancelled in the lifecycle test
    assert (await venues.get("/api/v1/calendar.ics", params={"region": "ZZ"})).status_code == 422
    assert (await venues.get("/api/v1/stops/unknown.ics")).status_code == 404

    types = [ce_type for ce_type, _ in await published(venues, sid, 9)]
    assert types.count("venues.session.added.v1") == 2 and "venues.session.removed.v1" in types
    assert types[-2:] == ["venues.session.updated.v1", "venues.stop.registration_opened.v1"]
    assert "venues.stop.postponed.v1" in types
