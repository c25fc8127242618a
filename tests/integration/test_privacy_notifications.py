"""Notifications' privacy desk on the real local database (events handed to the consumer's
routes directly, no broker): staff erasure request and its per-service status, the person's
signed links (erasure, export), this service's own erasure, and the follow rate limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from notifications.config import Settings
from notifications.mailer import Composer, Links
from notifications.main import create_app
from shared.auth import LinkSigner, ensure_keypair, issue_token
from shared.contracts.base import CloudEventHeaders
from shared.contracts.privacy import ErasureCompletedV1, ErasureRequestedV1
from shared.messaging.outbox import OUTBOX
from shared.testing.dump import dump
from shared.testing.infra import unique_db

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

EMAIL = "Follower.Erase@Example.org"
ADDRESS = EMAIL.lower()


@pytest.fixture
async def notif(infra, tmp_path):
    private, public = ensure_keypair(tmp_path)
    settings = Settings(mongo_url=infra.mongo_url, mongo_db=unique_db("notif_privacy"), kafka_bootstrap=infra.kafka_bootstrap,
                        jwt_public_key_file=public, follows_per_minute=3, privacy_requests_per_minute=3,
                        retention_days=0)
    app = create_app(settings)
    runtime = app.state.runtime
    staff = issue_token(private.read_bytes(), subject="staff@t", role="staff", territory_id=None, region=None,
                        issuer=settings.jwt_issuer, audience=settings.jwt_audience)

    async def deliver(event: Any) -> None:
        route = runtime.consumer._routes[event.TYPE]
        ce = CloudEventHeaders(type=event.TYPE, source="test")
        await runtime.uow.run(lambda tx: route.handler(event, tx, ce))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        client.runtime, client.deliver, client.settings = runtime, deliver, settings
        client.staff = {"Authorization": f"Bearer {staff}"}
        yield client
    await runtime.client.close()


def link_of(delivery: dict[str, Any]) -> str:
    return delivery["data"]["link_url"]


async def test_export_link_erasure_by_staff_and_status_per_service(notif):
    db = notif.runtime.db
    assert (await notif.post("/api/v1/followers", json={"email": EMAIL, "regions": ["BRE"],
                                                        "topics": ["replays"]})).status_code == 202
    await db["attendees"].insert_one({"_id": "r1", "stop_id": "s1", "email": ADDRESS, "first_name": "Fanny",
                                      "last_name": "Le Bris", "locale": "fr", "status": "confirmed",
                                      "manage_url": "http://p/r/r1?token=x"})
    await db["timers"].insert_one({"_id": "reminder:r1", "kind": "reminder", "due_at": datetime.now(UTC),
                                   "payload": {"registration_id": "r1"}, "attempts": 0})
    await db["suppressions"].insert_one({"_id": ADDRESS, "reason": "unsubscribed", "at": datetime.now(UTC)})

    # The person asks for their data: a signed link comes by email, the link returns JSON.
    assert (await notif.post("/api/v1/privacy/export-request", json={"email": EMAIL})).status_code == 202
    [mail] = await db["deliveries"].find({"kind": "privacy_export"}).to_list()
    assert mail["recipient"] == ADDRESS and mail["transactional"] is True
    links = Links(LinkSigner(notif.settings.link_secret.get_secret_value(), namespace=notif.settings.service_name),
                  portal="http://portal.test", public="http://t", ttl_confirm=60, ttl_prefs=60)
    composed = Composer(links, mail_from="x@y.z", unsubscribe_mailto="u@y.z").compose(mail, stop=None)
    assert link_of(mail) in composed.get_body(("plain",)).get_content()
    exported = await notif.get(link_of(mail).removeprefix("http://t"))
    assert exported.status_code == 200, exported.text
    data = exported.json()
    assert data["follower"]["email"] == ADDRESS and [r["id"] for r in data["registrations"]] == ["r1"]
    assert {m["kind"] for m in data["emails"]} == {"follow_confirm", "privacy_export"}
    assert (await notif.get("/api/v1/privacy/export", params={"token": "forged.token"})).status_code == 403

    # Staff request the erasure; the status lists every service as pending.
    assert (await notif.post("/api/v1/privacy/erasure", json={"email": EMAIL})).status_code == 401
    asked = await notif.post("/api/v1/privacy/erasure", json={"email": EMAIL}, headers=notif.staff)
    assert asked.status_code == 202, asked.text
    request_id = asked.json()["request_id"]
    status = (await notif.get(f"/api/v1/privacy/erasure/{request_id}", headers=notif.staff)).json()
    assert status["status"] == "pending" and set(status["services"]) == {"venues", "registration", "replays",
                                                                         "notifications"}
    [queued] = await db[OUTBOX].find({"type": ErasureRequestedV1.TYPE}).to_list()
    assert json.loads(bytes(queued["payload"])) == {"request_id": request_id, "email": ADDRESS}
    assert ADDRESS not in json.dumps(await db["erasure_requests"].find_one({"_id": request_id}), default=str)

    # This service erases (as it would on consuming the published request) and confirms.
    await notif.deliver(ErasureRequestedV1(request_id=request_id, email=ADDRESS))
    assert ADDRESS not in await dump(db)
    attendee = await db["attendees"].find_one({"_id": "r1"})
    assert attendee["first_name"] == "erased" and attendee["status"] == "confirmed"
    assert await db["timers"].count_documents({"_id": "reminder:r1"}) == 0
    assert await db["followers"].count_documents({}) == 0
    assert await db["suppressions"].count_documents({"reason": "unsubscribed"}) == 1  # the opt-out holds, hashed
    [ours] = [json.loads(bytes(r["payload"])) for r in await db[OUTBOX].find({"type": ErasureCompletedV1.TYPE}).to_list()]
    assert ours["request_id"] == request_id and ours["records"] >= 4
    for service, records in (("notifications", ours["records"]), ("venues", 0), ("registration", 2), ("replays", 0)):
        await notif.deliver(ErasureCompletedV1(request_id=request_id, service=service, records=records))
    status = (await notif.get(f"/api/v1/privacy/erasure/{request_id}", headers=notif.staff)).json()
    assert status["status"] == "completed" and status["services"]["registration"]["records"] == 2
    assert (await notif.get(f"/api/v1/privacy/erasure/{request_id}")).status_code == 401
    assert (await notif.get("/api/v1/privacy/erasure/unknown", headers=notif.staff)).status_code == 404


async def test_the_person_confirms_an_erasure_through_the_signed_link(notif):
    db = notif.runtime.db
    assert (await notif.post("/api/v1/privacy/erasure-request", json={"email": EMAIL})).status_code == 202
    [mail] = await db["deliveries"].find({"kind": "privacy_erasure"}).to_list()
    path = link_of(mail).removeprefix("http://t")
    page = await notif.get(path)
    assert page.status_code == 200 and "<form method=post>" in page.text
    confirmed = await notif.post(path)
    assert confirmed.status_code == 202, confirmed.text
    status = (await notif.get(f"/api/v1/privacy/erasure/{confirmed.json()['request_id']}", headers=notif.staff)).json()
    assert status["requested_by"] == "self" and status["status"] == "pending"
    export_token = path.split("token=")[1]
    assert (await notif.get("/api/v1/privacy/export", params={"token": export_token})).status_code == 403


async def test_follows_and_privacy_requests_are_rate_limited_per_client(notif):
    body = {"email": "someone@example.org", "regions": ["BRE"], "topics": ["replays"]}
    codes = [(await notif.post("/api/v1/followers", json=body)).status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429]
    refused = await notif.post("/api/v1/followers", json=body)
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    codes = [(await notif.post("/api/v1/privacy/export-request", json={"email": "a@example.org"})).status_code
             for _ in range(4)]
    assert codes == [202, 202, 202, 429]


async def test_retention_pseudonymises_the_attendee_model_of_a_held_stop(notif):
    from registration.samples import stop_snapshot
    from shared.contracts.venues import StopHeldV1

    db, snap = notif.runtime.db, stop_snapshot(status="held")
    await db["attendees"].insert_many([
        {"_id": "h1", "stop_id": snap.stop_id, "email": "held@example.org", "first_name": "Hélène",
         "last_name": "Kerbrat", "locale": "fr", "status": "checked_in"},
        {"_id": "o1", "stop_id": "other", "email": "other@example.org", "first_name": "Olivier",
         "last_name": "Kerbrat", "locale": "fr", "status": "confirmed"}])
    await notif.deliver(StopHeldV1(stop_id=snap.stop_id, stop=snap))
    [timer] = await db["timers"].find({"kind": "attendee_retention"}).to_list()
    assert timer["payload"] == {"stop_id": snap.stop_id}
    assert await notif.runtime.timers.fire_due(now=datetime.now(UTC) + timedelta(seconds=1)) >= 1
    held = await db["attendees"].find_one({"_id": "h1"})
    assert held["email"].startswith("erased-") and held["first_name"] == "erased" and held["status"] == "checked_in"
    assert (await db["attendees"].find_one({"_id": "o1"}))["email"] == "other@example.org"
