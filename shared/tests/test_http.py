from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from pymongo.errors import ServerSelectionTimeoutError

from shared.errors import Conflict, TooManyRequests
from shared.http import create_http_app
from shared.testing.http import running_app


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=5)
    capacity: int = Field(gt=0)


def app_with_routes():
    router = APIRouter()

    @router.post("/things")
    async def create(body: Body) -> dict:
        return body.model_dump()

    @router.post("/conflict")
    async def conflict() -> None:
        raise Conflict("illegal transition", current_state="held", allowed=["archived"])

    @router.post("/limited")
    async def limited() -> None:
        raise TooManyRequests("slow down", retry_after=7)

    @router.get("/db-down")
    async def db_down() -> None:
        raise ServerSelectionTimeoutError("no servers")

    @router.get("/bug")
    async def bug() -> None:
        raise RuntimeError("secret internals")

    return create_http_app(title="test", runtime=None, routers=[router], max_body_bytes=1000)


async def test_validation_errors_name_each_field_including_unknown_ones():
    async with running_app(app_with_routes()) as client:
        response = await client.post("/things", json={"name": "toolong", "capacity": 0, "status": "held"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert set(body["fields"]) == {"name", "capacity", "status"}
    assert "not allowed" in body["fields"]["status"]


async def test_domain_errors_use_the_envelope_with_extras():
    async with running_app(app_with_routes()) as client:
        conflict = await client.post("/conflict")
        limited = await client.post("/limited")
    assert conflict.status_code == 409
    assert conflict.json() == {"error": "conflict", "detail": "illegal transition", "fields": {},
                               "current_state": "held", "allowed": ["archived"]}
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"


async def test_database_outage_is_503_and_bugs_are_500_without_internals():
    async with running_app(app_with_routes()) as client:
        down = await client.get("/db-down")
        bug = await client.get("/bug")
        missing = await client.get("/nope")
    assert down.status_code == 503 and down.json()["error"] == "unavailable" and down.headers["retry-after"]
    assert bug.status_code == 500 and "secret" not in bug.text
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


async def test_request_ids_health_and_body_limit():
    async with running_app(app_with_routes()) as client:
        health = await client.get("/health", headers={"X-Request-ID": "abc"})
        ready = await client.get("/ready")
        big = await client.post("/things", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert health.json() == {"status": "ok"} and health.headers["x-request-id"] == "abc"
    assert ready.status_code == 200
    assert big.status_code == 413 and big.json()["error"] == "payload_too_large"
