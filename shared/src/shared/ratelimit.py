"""Rate limits for public writes (sign-up, follow, login), shared by every instance.

A fixed window per (action, client) counted in MongoDB, so two instances of a
service enforce one limit; windows expire by TTL. Over the limit → 429 with
Retry-After.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError
from pymongo.asynchronous.database import AsyncDatabase

from shared.errors import TooManyRequests
from shared.mongo import IndexSpec

RATE_LIMITS = "rate_limits"
RATE_LIMIT_INDEXES = [IndexSpec(RATE_LIMITS, [("expires_at", 1)], {"expireAfterSeconds": 0})]


@dataclass(frozen=True)
class Limit:
    action: str
    requests: int
    per_seconds: int


def client_key(request: Request) -> str:
    """The caller's address (behind a proxy, uvicorn's proxy_headers sets it), hashed: no raw IPs stored."""
    host = request.client.host if request.client else "unknown"
    return hashlib.sha256(host.encode()).hexdigest()[:16]


class RateLimiter:
    def __init__(self, db: AsyncDatabase, *, enabled: bool = True):
        self._collection = db[RATE_LIMITS]
        self.enabled = enabled

    async def hit(self, limit: Limit, key: str) -> None:
        if not self.enabled:
            return
        now = time.time()
        window = int(now // limit.per_seconds)
        window_end = (window + 1) * limit.per_seconds
        doc_id = f"{limit.action}:{key}:{window}"
        doc = None
        # Concurrent first hits of a window race on the upsert: the loser gets DuplicateKeyError
        # from MongoDB (nothing counted: try again, the document exists now) or, from SecantusDB,
        # None after counting (read the count back).
        for _ in range(3):
            try:
                doc = await self._collection.find_one_and_update(
                    {"_id": doc_id},
                    {"$inc": {"n": 1},
                     "$setOnInsert": {"expires_at": datetime.fromtimestamp(window_end, UTC) + timedelta(seconds=5)}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                ) or await self._collection.find_one({"_id": doc_id})
                break
            except DuplicateKeyError:
                continue
        if doc is None:
            return  # still racing after three tries: let the request through rather than fail it
        if doc["n"] > limit.requests:
            retry_after = max(1, int(window_end - now + 0.999))
            raise TooManyRequests(
                f"too many {limit.action} requests; retry in {retry_after} s", retry_after=retry_after
            )

    async def check(self, limit: Limit, request: Request) -> None:
        await self.hit(limit, client_key(request))
