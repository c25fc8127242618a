from __future__ import annotations

import pytest
from fastapi import APIRouter, Request

from shared.http import create_http_app
from shared.mongo import make_client
from shared.ratelimit import Limit, RateLimiter
from shared.testing.http import running_app
from shared.testing.infra import unique_db

pytestmark = pytest.mark.integration


async def test_public_writes_over_the_limit_get_429_with_retry_after(infra):
    client = make_client(infra.mongo_url, app_name="test")
    db = client[unique_db("ratelimit")]
    first, second = RateLimiter(db), RateLimiter(db)  # two instances share one limit
    limit = Limit("signup", requests=3, per_seconds=60)
    router = APIRouter()

    @router.post("/signup/{instance}")
    async def signup(instance: int, request: Request) -> dict:
        await (first if instance == 1 else second).check(limit, request)
        return {"ok": True}

    try:
        async with running_app(create_http_app(title="t", runtime=None, routers=[router])) as http:
            statuses = [(await http.post(f"/signup/{1 + i % 2}")).status_code for i in range(5)]
            refused = await http.post("/signup/1")
    finally:
        await client.close()
    assert statuses == [200, 200, 200, 429, 429]
    assert refused.json()["error"] == "too_many_requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
