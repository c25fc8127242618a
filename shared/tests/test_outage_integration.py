"""A database or broker outage: /ready fails, writes answer 503 (never 500), and work resumes when it is back."""

from __future__ import annotations

from typing import ClassVar

import httpx
import pytest
from fastapi import APIRouter

from shared.config import BaseServiceSettings
from shared.contracts.base import Event
from shared.http import create_http_app
from shared.runtime import ServiceRuntime
from shared.testing.eventually import eventually
from shared.testing.infra import start_infra, unique_db

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


class NoteV1(Event):
    TYPE: ClassVar[str] = "test.note.written.v1"
    TOPIC: ClassVar[str] = "test.notes.v1"
    stop_id: str


@pytest.fixture
def persistent_infra():
    infra = start_infra(persistent=True)
    yield infra
    infra.stop()


def app_for(infra) -> tuple:
    settings = BaseServiceSettings(service_name=unique_db("svc"), mongo_url=infra.mongo_url,
                                   kafka_bootstrap=infra.kafka_bootstrap, relay_poll_seconds=0.2)
    runtime = ServiceRuntime(settings)
    router = APIRouter()

    @router.post("/notes/{stop_id}", status_code=201)
    async def write(stop_id: str) -> dict:
        async def work(tx):
            await tx.db.notes.insert_one({"stop_id": stop_id}, session=tx.session)
            tx.emit(NoteV1(stop_id=stop_id))

        await runtime.uow.run(work)
        return {"ok": True}

    @router.get("/notes")
    async def count() -> dict:
        return {"count": await runtime.db.notes.count_documents({})}

    return create_http_app(title="svc", runtime=runtime, routers=[router]), runtime


async def test_database_outage_answers_503_then_recovers(persistent_infra):
    from shared.testing.http import running_app

    app, runtime = app_for(persistent_infra)
    async with running_app(app) as client:
        assert (await client.get("/ready")).status_code == 200
        spec = (await client.get("/asyncapi.json")).json()
        assert spec["asyncapi"].startswith("3.") and spec["info"]["title"] == "svc"
        assert (await client.post("/notes/s1")).status_code == 201

        persistent_infra.mongo.stop()  # SIGTERM; see docs/reliability.md for kill -9 of the local database
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("unavailable")
        during = await client.post("/notes/s2")
        assert during.status_code == 503 and during.json()["error"] == "unavailable"

        persistent_infra.start_mongo()
        assert (await client.post("/notes/s3")).status_code == 201
        assert (await client.get("/ready")).status_code == 200
        assert await runtime.db.notes.count_documents({}) == 2, "the data from before the outage survived"


async def test_broker_outage_refuses_writes_with_503_and_serves_reads(persistent_infra):
    """Issue #2: while the broker is away a write answers 503 with the error envelope and Retry-After
    (its events could not be published), reads are served, /ready fails; writes pass again after."""
    from shared.testing.http import running_app

    app, runtime = app_for(persistent_infra)
    async with running_app(app) as client:
        assert (await client.post("/notes/s1")).status_code == 201

        persistent_infra.kafka.stop()
        accepted_meanwhile = 0  # before the watcher noticed: kept in the outbox, published later

        async def refused() -> httpx.Response:
            nonlocal accepted_meanwhile
            response = await client.post("/notes/s2")
            accepted_meanwhile += response.status_code == 201
            assert response.status_code == 503, response.text
            return response

        during = await eventually(refused, timeout=15, interval=0.2)
        body = during.json()
        assert body["error"] == "unavailable" and "broker" in body["detail"] and body["fields"] == {}
        assert during.headers["Retry-After"] == "2" and during.headers["X-Request-ID"]
        notes = (await client.get("/notes")).json()["count"]
        assert notes == 1 + accepted_meanwhile, "reads are served; the refused write left nothing"
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["broker"].startswith("unavailable")

        persistent_infra.start_kafka()

        async def accepted() -> bool:
            response = await client.post("/notes/s3")
            assert response.status_code == 201, response.text
            return True

        await eventually(accepted, timeout=30, interval=0.5)
        assert (await client.get("/notes")).json()["count"] == notes + 1

        async def outbox_drained() -> bool:
            return await runtime.db.outbox.count_documents({}) == 0

        await eventually(outbox_drained, timeout=30, interval=0.5)  # nothing accepted is lost
