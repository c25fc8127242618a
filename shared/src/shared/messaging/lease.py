"""A lease in the ``locks`` collection: exactly one active relay / timer runner per service.

An instance holds the lease while it keeps renewing it; if it dies, the lease
expires and another instance takes over.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError


class Lease:
    def __init__(self, db: AsyncDatabase, name: str, *, ttl_seconds: float, owner: str | None = None):
        self._locks = db["locks"]
        self.name = name
        self.ttl = timedelta(seconds=ttl_seconds)
        # host:pid first, so an operator (and the scale-out test) can tell which instance holds it.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False
        self._renewed = 0.0
        # Counts the times this instance took the lease from nobody or from another owner: state
        # built under an earlier term may be stale (another holder may have moved on meanwhile).
        self.term = 0

    async def hold(self) -> bool:
        """Like acquire(), without a write while the last renewal is under a third of the ttl old:
        the relay checks its lease before every batch."""
        if self.held and time.monotonic() - self._renewed < self.ttl.total_seconds() / 3:
            return True
        return await self.acquire()

    async def acquire(self) -> bool:
        """Take or renew the lease; False while another live owner holds it."""
        now = datetime.now(UTC)
        started = time.monotonic()
        try:
            before = await self._locks.find_one_and_update(
                {"_id": self.name, "$or": [{"owner": self.owner}, {"expires_at": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires_at": now + self.ttl, "renewed_at": now}},
                upsert=True,
            )
            if before is None or before.get("owner") != self.owner:
                self.term += 1
            self.held = True
            self._renewed = started
        except DuplicateKeyError:
            self.held = False
        return self.held

    async def release(self) -> None:
        if self.held:
            await self._locks.delete_one({"_id": self.name, "owner": self.owner})
            self.held = False
