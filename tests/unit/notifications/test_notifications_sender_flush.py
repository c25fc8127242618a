"""A graceful stop cancels the periodic flush; the outcomes it was writing must not be lost,
or a restarted sender sends those emails again (seen in CI as 36 duplicates after a stop)."""

from __future__ import annotations

import asyncio

import pytest

from notifications import repository as repo
from notifications.config import Settings
from notifications.sender import EmailSender


async def test_outcomes_of_a_cancelled_flush_are_recorded_by_the_next_one(monkeypatch):
    sender = EmailSender(Settings(), db=None, composer=None)  # type: ignore[arg-type]
    sender._outcomes = [({"_id": f"d{i}"}, {"status": "sent"}, None) for i in range(3)]  # type: ignore[misc]
    started, recorded = asyncio.Event(), []

    async def hangs(db, outcomes):
        started.set()
        await asyncio.Event().wait()

    async def records(db, outcomes):
        recorded.extend(delivery["_id"] for delivery, _ in outcomes)

    monkeypatch.setattr(repo, "record_outcomes", hangs)
    flushing = asyncio.create_task(sender.flush())
    await started.wait()
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing

    monkeypatch.setattr(repo, "record_outcomes", records)
    await sender.flush()
    assert recorded == ["d0", "d1", "d2"]
