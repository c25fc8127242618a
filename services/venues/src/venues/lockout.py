"""Login lockout with exponential backoff, on top of the per-window rate limits.

After ``after`` consecutive failed logins for one account (hashed email), the account
refuses logins for ``base_seconds * 2**(failures - after)`` seconds (capped at
``max_seconds``) with 429 + Retry-After; a successful login resets the count. Kept in
MongoDB (shared by every instance); records expire a day after the last failure.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from shared.errors import TooManyRequests
from shared.mongo import IndexSpec

from venues.accounts import normalise_email

LOGIN_FAILURES = "login_failures"
LOCKOUT_INDEXES = [IndexSpec(LOGIN_FAILURES, [("expires_at", 1)], {"expireAfterSeconds": 0})]


def _key(email: str) -> str:
    try:
        email = normalise_email(email)
    except ValueError:
        email = email.strip().lower()
    return hashlib.sha256(email.encode()).hexdigest()[:24]


class LoginLockout:
    def __init__(self, db: AsyncDatabase, *, after: int = 5, base_seconds: float = 2.0, max_seconds: float = 900.0,
                 enabled: bool = True):
        self._collection = db[LOGIN_FAILURES]
        self.after, self.base, self.max = after, base_seconds, max_seconds
        self.enabled = enabled

    async def check(self, email: str) -> None:
        """429 with Retry-After while the account is locked."""
        if not self.enabled:
            return
        doc = await self._collection.find_one({"_id": _key(email)})
        locked_until = doc.get("locked_until") if doc else None
        if locked_until is not None:
            locked_until = locked_until.replace(tzinfo=locked_until.tzinfo or UTC)
            remaining = (locked_until - datetime.now(UTC)).total_seconds()
            if remaining > 0:
                retry = max(1, math.ceil(remaining))
                raise TooManyRequests(f"too many failed logins; retry in {retry} s", retry_after=retry)

    async def failed(self, email: str) -> None:
        if not self.enabled:
            return
        now = datetime.now(UTC)
        doc = await self._collection.find_one_and_update(
            {"_id": _key(email)}, {"$inc": {"failures": 1}, "$set": {"expires_at": now + timedelta(days=1)}},
            upsert=True, return_document=ReturnDocument.AFTER)
        over = doc["failures"] - self.after
        if over >= 0:
            delay = min(self.max, self.base * 2**over)
            await self._collection.update_one({"_id": doc["_id"]},
                                              {"$set": {"locked_until": now + timedelta(seconds=delay)}})

    async def succeeded(self, email: str) -> None:
        if self.enabled:
            await self._collection.delete_one({"_id": _key(email)})
