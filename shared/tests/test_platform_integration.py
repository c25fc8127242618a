"""Leases, timers and the transaction helper on the real local database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.messaging.lease import Lease
from shared.mongo import make_client, run_in_transaction
from shared.testing.eventually import eventually
from shared.testing.infra import unique_db
from shared.timers import TimerRunner
from shared.uow import UnitOfWork

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(infra):
    client = make_client(infra.mongo_url, app_name="test")
    yield client, client[unique_db("platform")]
    await client.close()


async def test_concurrent_transactions_never_oversell(db):
    client, database = db
    await database.places.insert_one({"_id": "stop", "capacity": 10, "taken": 0})

    async def take(i: int) -> bool:
        async def work(session):
            taken = await database.places.find_one_and_update(
                {"_id": "stop", "$expr": {"$lt": ["$taken", "$capacity"]}}, {"$inc": {"taken": 1}}, session=session)
            await database.claims.insert_one({"i": i, "ok": bool(taken)}, session=session)
            return bool(taken)

        return await run_in_transaction(client, work, max_attempts=200)

    results = await asyncio.gather(*(take(i) for i in range(100)))
    assert sum(results) == 10
    assert (await database.places.find_one({"_id": "stop"}))["taken"] == 10
    assert await database.claims.count_documents({}) == 100


async def test_lease_has_one_holder_and_fails_over_when_it_expires(db):
    _, database = db
    first = Lease(database, "svc.relay", ttl_seconds=0.5, owner="a")
    second = Lease(database, "svc.relay", ttl_seconds=0.5, owner="b")
    assert await first.acquire() and not await second.acquire()
    assert await first.acquire(), "the holder renews"
    await asyncio.sleep(0.7)
    assert await second.acquire(), "an expired lease is taken over"
    assert not await first.acquire()
    await second.release()
    assert await first.acquire()


async def test_timer_fires_once_after_a_restart_and_replanning_moves_it(db):
    client, database = db
    fired: list[str] = []

    async def on_due(tx, payload):
        fired.append(payload["name"])
        await tx.db.effects.insert_one({"name": payload["name"]}, session=tx.session)

    uow = UnitOfWork(client, database, source="svc")
    soon = datetime.now(UTC) + timedelta(milliseconds=300)

    async def plan(tx):
        await tx.schedule("t-1", "remind", soon, {"name": "one"})
        await tx.schedule("t-2", "remind", soon, {"name": "two"})

    await uow.run(plan)

    async def replan(tx):
        await tx.schedule("t-2", "remind", datetime.now(UTC) + timedelta(hours=1), {"name": "two"})

    await uow.run(replan)

    # The first runner "dies" before the timers are due; a new one (after a restart) fires them.
    dead = TimerRunner(uow, Lease(database, "svc.timers", ttl_seconds=0.3, owner="dead"), {"remind": on_due})
    assert await dead._lease.acquire()
    runner = TimerRunner(uow, Lease(database, "svc.timers", ttl_seconds=0.3, owner="new"), {"remind": on_due},
                         poll_seconds=0.1)
    await runner.start()
    try:
        await eventually(lambda: fired == ["one"], timeout=10)
        await asyncio.sleep(0.3)
        assert fired == ["one"], "fires once; the re-planned timer is not due"
        assert await database.effects.count_documents({}) == 1
        assert await database.timers.count_documents({}) == 1
    finally:
        await runner.stop()


async def test_failing_timer_is_retried_then_parked(db):
    client, database = db
    uow = UnitOfWork(client, database, source="svc")

    async def boom(tx, payload):
        raise RuntimeError("downstream rule failed")

    async def plan(tx):
        await tx.schedule("t-bad", "bad", datetime.now(UTC) - timedelta(seconds=1), {})

    await uow.run(plan)
    runner = TimerRunner(uow, Lease(database, "svc.timers2", ttl_seconds=5), {"bad": boom}, max_attempts=2)
    await runner.fire_due()
    timer = await database.timers.find_one({"_id": "t-bad"})
    assert timer["attempts"] == 1 and "downstream rule failed" in timer["error"] and not timer.get("failed")
    await runner.fire_due(now=datetime.now(UTC) + timedelta(hours=1))
    assert (await database.timers.find_one({"_id": "t-bad"}))["failed"] is True
