"""Concurrent first hits of one window (two instances, a burst) are all counted, none fails.

SecantusDB answers ``None`` to the losing upsert of a race on a new window document
(real MongoDB may raise DuplicateKeyError): the limiter must retry, not crash with a 500.
"""

from __future__ import annotations

import asyncio

import pytest

from shared.mongo import make_client
from shared.ratelimit import RATE_LIMITS, Limit, RateLimiter
from shared.testing.infra import unique_db

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_a_burst_of_first_hits_on_a_new_window_is_counted_without_errors(infra):
    client = make_client(infra.mongo_url, app_name="test")
    db = client[unique_db("ratelimit")]
    limiters = [RateLimiter(db), RateLimiter(db)]  # two instances
    limit = Limit("signup", requests=100_000, per_seconds=60)
    try:
        for round_ in range(10):
            results = await asyncio.gather(*(limiters[i % 2].hit(limit, f"client-{round_}") for i in range(20)),
                                           return_exceptions=True)
            assert [r for r in results if isinstance(r, BaseException)] == []
        counts = [doc["n"] async for doc in db[RATE_LIMITS].find({})]
    finally:
        await client.close()
    assert sorted(counts) == [20] * 10
