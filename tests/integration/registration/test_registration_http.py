"""Two registration instances over HTTP on the real local broker and database: the stop
arrives as a venues event on Kafka, 200 simultaneous sign-ups never overbook it, events
leave through the outbox, and hosts, attendees and bad input get the documented answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn
from aiokafka import AIOKafkaConsumer

from shared.auth import ensure_keypair, issue_token
from shared.contracts import topics
from shared.contracts.venues import StopCancelledV1, StopRegistrationOpenedV1
from shared.localstack.processes import free_port
from shared.testing.eventually import eventually
from shared.testing.infra import unique_db

from registration.config import Settings
from registration.main import create_app
from registration.samples import publish, stop_snapshot

pytestmark = pytest.mark.integration

CONSENTS = {"contact": True, "photo": False, "recording": False}


def person(n: int | str, **overrides: object) -> dict[str, object]:
    return {"email": f"  Person.{n}@Example.ORG ", "first_name": "Léa", "last_name": "Morvan",
            "organisation": "Quimperlé Communauté", "profile": "public_sector_staff", "consents": CONSENTS,
            **overrides}


class Cluster:
    def __init__(self, infra, keys: Path):
        self.infra = infra
        private, self.public_key = ensure_keypair(keys)
        self.private_pem = private.read_bytes()
        self.group = unique_db("registration")
        self.servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
        self.urls: list[str] = []

    def settings(self, port: int) -> Settings:
        return Settings(service_name=self.group, mongo_url=self.infra.mongo_url, kafka_bootstrap=self.infra.kafka_bootstrap,
                        http_port=port, portal_base_url="http://portal.test", jwt_public_key_file=self.public_key,
                        relay_poll_seconds=0.2, timer_poll_seconds=0.2, kafka_partitions=3,
                        rate_limits_enabled=False)  # 200 sign-ups from one address: the limit has its own test

    async def start(self, instances: int = 2) -> None:
        for _ in range(instances):
            port = free_port()
            config = uvicorn.Config(create_app(self.settings(port)), host="127.0.0.1", port=port, log_config=None,
                                    access_log=False, log_level="warning", lifespan="on", timeout_keep_alive=60, backlog=1024)
            server = uvicorn.Server(config)
            self.servers.append((server, asyncio.create_task(server.serve())))
            self.urls.append(f"http://127.0.0.1:{port}")
        await eventually(lambda: all(s.started for s, _ in self.servers), timeout=60)

    async def stop(self) -> None:
        for server, _ in self.servers:
            server.should_exit = True
        await asyncio.gather(*(task for _, task in self.servers), return_exceptions=True)

    def bearer(self, role: str, territory_id: str | None = None) -> dict[str, str]:
        token = issue_token(self.private_pem, subject=f"{role}@test", role=role, territory_id=territory_id,
                            region="FR-BRE", issuer="intercotour-venues", audience="intercotour")
        return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture(scope="module")
async def cluster(infra, tmp_path_factory) -> AsyncIterator[Cluster]:
    c = Cluster(infra, tmp_path_factory.mktemp("keys"))
    await c.start()
    yield c
    await c.stop()


@pytest_asyncio.fixture(scope="module")
async def http(cluster) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        yield client


async def open_stop(cluster: Cluster, http: httpx.AsyncClient, capacity: int, **kw: object) -> str:
    snap = stop_snapshot(capacity=capacity, **kw)
    await publish(cluster.infra.kafka_bootstrap, StopRegistrationOpenedV1(stop_id=snap.stop_id, stop=snap))

    async def known() -> bool:
        return (await http.get(f"{cluster.urls[0]}/api/v1/stops/{snap.stop_id}/availability")).status_code == 200

    await eventually(known, timeout=30)
    return snap.stop_id


async def test_200_simultaneous_sign_ups_on_two_instances_fill_exactly_10_places(cluster, http):
    stop_id = await open_stop(cluster, http, capacity=10)

    async def sign_up(n: int) -> httpx.Response:
        return await http.post(f"{cluster.urls[n % 2]}/api/v1/stops/{stop_id}/registrations", json=person(n))

    answers = await asyncio.gather(*(sign_up(n) for n in range(200)))
    assert [a.status_code for a in answers] == [201] * 200, {a.status_code: a.text for a in answers}
    bodies = [a.json() for a in answers]
    confirmed = [b for b in bodies if b["status"] == "confirmed"]
    positions = sorted(b["waitlist_position"] for b in bodies if b["status"] == "waitlisted")
    assert len(confirmed) == 10 and positions == list(range(1, 191))
    assert len({b["check_in_code"] for b in confirmed}) == 10
    availability = (await http.get(f"{cluster.urls[1]}/api/v1/stops/{stop_id}/availability")).json()
    assert availability == {"capacity": 10, "confirmed": 10, "offered": 0, "waitlisted": 190, "available": 0,
                            "status": "registration_open"}


async def test_attendee_host_and_event_journey_over_http(cluster, http):
    a, b = cluster.urls
    stop_id = await open_stop(cluster, http, capacity=1)
    base = f"{a}/api/v1/stops/{stop_id}/registrations"

    # Bad input is refused with the field named; nothing is written.
    for body, field in [(person("x", email="not-an-email"), "email"), ({**person("x"), "consents": None}, "consents"),
                        ({k: v for k, v in person("x").items() if k != "consents"}, "consents"),
                        (person("x", consents={"contact": True, "photo": True}), "consents.recording"),
                        (person("x", last_name="x" * 101), "last_name"), (person("x", status="confirmed"), "status")]:
        refused = await http.post(base, json=body)
        assert refused.status_code == 422 and field in refused.json()["fields"], (field, refused.text)
    assert (await http.post(f"{a}/api/v1/stops/nope/registrations", json=person(1))).status_code == 404

    first = await http.post(base, json=person(1, locale="en"), headers={"Idempotency-Key": "key-1"})
    assert first.status_code == 201 and first.json()["status"] == "confirmed"
    replay = await http.post(f"{b}/api/v1/stops/{stop_id}/registrations", json=person(1, locale="en"),
                             headers={"Idempotency-Key": "key-1"})
    assert (replay.status_code, replay.json()) == (201, first.json())
    duplicate = await http.post(base, json=person(1))
    assert duplicate.status_code == 409 and duplicate.json()["error"] == "already_registered"
    waiting = (await http.post(base, json=person(2))).json()
    assert waiting["status"] == "waitlisted" and waiting["waitlist_position"] == 1

    # Self-service through the signed link the portal would show.
    anne = first.json()
    token = httpx.URL(anne["manage_url"]).params["token"]
    view = await http.get(f"{a}/api/v1/registrations/{anne['id']}", params={"token": token})
    assert view.json()["email"] == "person.1@example.org" and view.json()["consents"] == CONSENTS
    qr = await http.get(f"{a}/api/v1/registrations/{anne['id']}/qr.svg", params={"token": token})
    assert qr.headers["content-type"].startswith("image/svg+xml") and b"<svg" in qr.content
    forged = await http.get(f"{a}/api/v1/registrations/{anne['id']}", params={"token": token[:-3] + "abc"})
    other = await http.get(f"{a}/api/v1/registrations/{waiting['id']}", params={"token": token})
    assert forged.status_code == 403 and other.status_code == 403

    # Hosts: own territory only; CSV with BOM and one row per registration.
    roster_url = f"{a}/api/v1/stops/{stop_id}/registrations"
    assert (await http.get(roster_url)).status_code == 401
    assert (await http.get(roster_url, headers=cluster.bearer("host", "terr-elsewhere"))).status_code == 403
    host = cluster.bearer("host", "terr-quimperle")
    roster = (await http.get(roster_url, headers=host)).json()
    assert roster["count"] == 2 and roster["items"][1]["waitlist_position"] == 1
    csv = await http.get(f"{roster_url}.csv", headers=cluster.bearer("staff"))
    lines = csv.content.decode("utf-8").splitlines()
    assert csv.content.startswith(b"\xef\xbb\xbf") and len(lines) == 3 and "consent_photo" in lines[0]
    scan = await http.post(f"{b}/api/v1/checkins", headers=host,
                           json={"code": anne["check_in_code"], "stop_id": stop_id, "nonce": "scan-1"})
    assert scan.json()["status"] == "ok"

    # Cancelling frees the place: the waitlisted person gets an offer at once, by event.
    cancelled = await http.post(f"{a}/api/v1/registrations/{waiting['id']}/cancel",
                                params={"token": httpx.URL(waiting["manage_url"]).params["token"]})
    assert cancelled.json()["status"] == "cancelled"
    await publish(cluster.infra.kafka_bootstrap,
                  StopCancelledV1(stop_id=stop_id, reason="tempête", stop=stop_snapshot(stop_id, status="cancelled")))

    seen = await read_events(cluster.infra.kafka_bootstrap, stop_id, until="registration.registration.cancelled.v1",
                             count=2)
    types = [t for t, _ in seen]
    assert types[:2] == ["registration.registration.confirmed.v1", "registration.stop.sold_out.v1"]
    organiser = [e for t, e in seen if t.endswith("cancelled.v1") and e["by"] == "organiser"]
    assert organiser and organiser[0]["registration_id"] == anne["id"] and organiser[0]["locale"] == "en"


async def read_events(bootstrap: str, stop_id: str, until: str, count: int) -> list[tuple[str, dict]]:
    """Registration events keyed by ``stop_id``, read until ``count`` events of type ``until`` arrived."""
    consumer = AIOKafkaConsumer(topics.REGISTRATION_REGISTRATIONS, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", group_id=unique_db("reader"))
    await consumer.start()
    seen: list[tuple[str, dict]] = []
    try:
        async def arrived() -> bool:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    if r.key == stop_id.encode():
                        seen.append((dict(r.headers)["ce_type"].decode(), json.loads(r.value)))
            return sum(t == until for t, _ in seen) >= count

        await eventually(arrived, timeout=30)
    finally:
        await consumer.stop()
    return seen
