"""Write conflicts still colliding after the unit of work's retries are a 503 to retry, not a 500
(found by tests/faults: replays' publish answered 500 under load)."""

from __future__ import annotations

from fastapi import APIRouter
from pymongo.errors import OperationFailure

from shared.http import create_http_app
from shared.testing.http import running_app


async def test_exhausted_write_conflicts_are_503_with_retry_after():
    router = APIRouter()

    @router.post("/publish")
    async def publish() -> dict:
        raise OperationFailure("WriteConflict error: this operation conflicted with another operation",
                               code=112, details={"errorLabels": ["TransientTransactionError"]})

    async with running_app(create_http_app(title="test", runtime=None, routers=[router])) as client:
        response = await client.post("/publish")
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "unavailable" and response.headers["retry-after"]
