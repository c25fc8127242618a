"""Durable timers: documents with a due time, fired by one runner per service (a lease).

Firing deletes the timer and runs its handler in the same transaction, so a
timer fires once even across restarts; a handler that fails is retried with
backoff and, after ``max_attempts``, parked with its error for an operator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.logging import get_logger
from shared.messaging.lease import Lease
from shared.uow import TIMERS, Tx, UnitOfWork

log = get_logger(__name__)

TimerHandler = Callable[[Tx, dict[str, Any]], Awaitable[None]]


class TimerRunner:
    def __init__(
        self,
        uow: UnitOfWork,
        lease: Lease,
        handlers: dict[str, TimerHandler],
        *,
        poll_seconds: float = 1.0,
        max_attempts: int = 8,
    ):
        self._uow = uow
        self._timers = uow.db[TIMERS]
        self._lease = lease
        self._handlers = handlers
        self._poll = poll_seconds
        self._max_attempts = max_attempts
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="timer-runner")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._lease.release()

    async def _run(self) -> None:
        while True:
            try:
                if await self._lease.acquire():
                    await self.fire_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("timers.retry", error=repr(exc))
            wait = await self._next_wait()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            self._wake.clear()

    async def _next_wait(self) -> float:
        with contextlib.suppress(Exception):
            nxt = await self._timers.find_one({"failed": {"$ne": True}}, sort=[("due_at", 1)], projection={"due_at": 1})
            if nxt:
                return max(0.0, min(self._poll, (nxt["due_at"] - datetime.now(UTC)).total_seconds()))
        return self._poll

    async def fire_due(self, now: datetime | None = None) -> int:
        """Fire every timer due at ``now``; returns how many fired."""
        now = now or datetime.now(UTC)
        due = await self._timers.find({"due_at": {"$lte": now}, "failed": {"$ne": True}}).sort("due_at", 1).limit(200).to_list()
        fired = 0
        for timer in due:
            fired += await self._fire(timer)
        return fired

    async def _fire(self, timer: dict[str, Any]) -> int:
        handler = self._handlers.get(timer["kind"])
        if handler is None:
            log.error("timers.unknown_kind", kind=timer["kind"], timer_id=timer["_id"])
            await self._timers.update_one({"_id": timer["_id"]}, {"$set": {"failed": True, "error": "unknown timer kind"}})
            return 0

        async def work(tx: Tx) -> bool:
            # Matching due_at too: a timer re-planned since we read it is not ours to fire.
            gone = await tx.db[TIMERS].delete_one({"_id": timer["_id"], "due_at": timer["due_at"]}, session=tx.session)
            if gone.deleted_count == 0:
                return False
            await handler(tx, timer["payload"])
            return True

        try:
            return int(await self._uow.run(work, causation_id=str(timer["_id"])))
        except Exception as exc:
            attempts = timer.get("attempts", 0) + 1
            update: dict[str, Any] = {"attempts": attempts, "error": repr(exc)[:500]}
            if attempts >= self._max_attempts:
                update["failed"] = True
            else:
                update["due_at"] = datetime.now(UTC) + timedelta(seconds=min(300, 0.5 * 2**attempts))
            log.warning("timers.failed", timer_id=timer["_id"], kind=timer["kind"], attempts=attempts, error=repr(exc))
            await self._timers.update_one({"_id": timer["_id"]}, {"$set": update})
            return 0
