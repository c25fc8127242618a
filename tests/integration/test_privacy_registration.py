"""Registration's privacy duties on the real local database (events handed to the consumer's
routes directly, no broker): erasure pseudonymises and keeps the counts, confirms by event,
retention purges a held stop's attendees, staff can export a person's registrations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.auth import ensure_keypair, issue_token
from shared.contracts import venues as v
from shared.contracts.privacy import ErasureCompletedV1, ErasureRequestedV1
from shared.messaging.outbox import OUTBOX
from shared.privacy import pseudonym
from shared.testing.dump import dump
from shared.testing.infra import unique_db

from registration.config import Settings
from registration.main import create_app
from registration.samples import stop_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def person(name: str) -> dict[str, Any]:
    return {"email": f"{name.title()}@Example.org", "first_name": name.title(), "last_name": "Morvan",
            "organisation": "Mairie de Quimperlé", "profile": "public_sector_staff",
            "consents": {"contact": True, "photo": False, "recording": False}}


@pytest.fixture
async def reg(infra, tmp_path):
    private, public = ensure_keypair(tmp_path)
    settings = Settings(service_name=unique_db("registration_privacy"), mongo_url=infra.mongo_url,
                        kafka_bootstrap=infra.kafka_bootstrap, jwt_public_key_file=public, retention_days=0)
    app = create_app(settings)
    runtime = app.state.runtime

    def bearer(role: str) -> dict[str, str]:
        token = issue_token(private.read_bytes(), subject=f"{role}@t", role=role, territory_id="t", region="FR-BRE",
                            issuer="intercotour-venues", audience="intercotour")
        return {"Authorization": f"Bearer {token}"}

    async def deliver(event: Any) -> None:
        route = runtime.consumer._routes[event.TYPE]
        await runtime.uow.run(lambda tx: route.handler(event, tx, None))

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        client.runtime, client.deliver, client.bearer, client.secret = runtime, deliver, bearer, settings.link_secret
        yield client
    await runtime.client.close()


async def test_erasure_pseudonymises_keeps_counts_confirms_and_export_shows_what_is_left(reg):
    snap = stop_snapshot(capacity=1)
    await reg.deliver(v.StopRegistrationOpenedV1(stop_id=snap.stop_id, stop=snap))
    url = f"/api/v1/stops/{snap.stop_id}/registrations"
    anne = await reg.post(url, json=person("anne"), headers={"Idempotency-Key": "k-anne"})
    bob = await reg.post(url, json=person("bob"))
    assert (anne.status_code, bob.status_code) == (201, 201) and bob.json()["status"] == "waitlisted"
    before = (await reg.get(f"/api/v1/stops/{snap.stop_id}/availability")).json()

    export = await reg.get("/api/v1/privacy/export", params={"email": "ANNE@example.org"}, headers=reg.bearer("staff"))
    assert export.status_code == 200, export.text
    items = export.json()["registrations"]
    assert [(i["id"], i["email"], i["first_name"]) for i in items] == [(anne.json()["id"], "anne@example.org", "Anne")]
    assert (await reg.get("/api/v1/privacy/export", params={"email": "anne@example.org"})).status_code == 401
    assert (await reg.get("/api/v1/privacy/export", params={"email": "anne@example.org"},
                          headers=reg.bearer("host"))).status_code == 403

    db = reg.runtime.db
    await reg.deliver(ErasureRequestedV1(request_id="req-1", email="Anne@Example.org"))
    assert "anne@example.org" not in await dump(db)  # registrations, idempotency, queued events
    assert "bob@example.org" in await dump(db)
    doc = await db["registrations"].find_one({"_id": anne.json()["id"]})
    alias = pseudonym("anne@example.org", reg.secret.get_secret_value())
    assert doc["email"] == alias and doc["first_name"] == doc["last_name"] == doc["organisation"] == "erased"
    assert doc["status"] == "confirmed" and doc["erased"] is True
    assert (await reg.get(f"/api/v1/stops/{snap.stop_id}/availability")).json() == before
    confirmations = [json.loads(bytes(r["payload"])) for r in await db[OUTBOX].find({"type": ErasureCompletedV1.TYPE}).to_list()]
    # anne's registration and the queued (not yet relayed) event that carried her address
    assert confirmations == [{"request_id": "req-1", "service": db.name, "records": 2}]
    gone = await reg.get("/api/v1/privacy/export", params={"email": "anne@example.org"}, headers=reg.bearer("staff"))
    assert gone.json()["registrations"] == []


async def test_retention_pseudonymises_a_held_stops_attendees_after_the_delay(reg):
    snap = stop_snapshot(capacity=5)
    await reg.deliver(v.StopRegistrationOpenedV1(stop_id=snap.stop_id, stop=snap))
    other = stop_snapshot(capacity=5)
    await reg.deliver(v.StopRegistrationOpenedV1(stop_id=other.stop_id, stop=other))
    for name in ("carl", "dana"):
        assert (await reg.post(f"/api/v1/stops/{snap.stop_id}/registrations", json=person(name))).status_code == 201
    assert (await reg.post(f"/api/v1/stops/{other.stop_id}/registrations", json=person("carl"))).status_code == 201
    await reg.deliver(v.StopHeldV1(stop_id=snap.stop_id, stop=snap.model_copy(update={"status": "held"})))
    timers = await reg.runtime.db["timers"].find({"kind": "retention"}).to_list()
    assert [t["payload"] for t in timers] == [{"stop_id": snap.stop_id}]
    assert await reg.runtime.timers.fire_due(now=datetime.now(UTC) + timedelta(seconds=1)) >= 1
    held = await reg.runtime.db["registrations"].find({"stop_id": snap.stop_id}).to_list()
    assert {d["first_name"] for d in held} == {"erased"} and all(d["email"].startswith("erased-") for d in held)
    kept = await reg.runtime.db["registrations"].find_one({"stop_id": other.stop_id})
    assert kept["email"] == "carl@example.org"  # another stop, not held: untouched
