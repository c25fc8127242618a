"""Sign-up throughput of the registration service against the raw database ceiling.

Starts Tansu, SecantusDB and the registration service (``python -m registration.main``)
on free ports, opens one stop by publishing a venues event, then:
  1. sends ``--n`` sign-ups through HTTP at ``--concurrency`` (capacity ``--capacity``,
     default n/2) and measures sign-ups/s and p50/p99 latency, then checks nobody was overbooked;
  2. stops the service and writes the same documents (registration insert + conditional
     counter update, in one transaction) with a bare PyMongo script at the same concurrency
     (and, for context, one at a time: a single hot counter document makes concurrent raw
     writers spend their time in write-conflict retries).
Prints both, their ratio, the command, and a last line of JSON.

    .venv/bin/python bench/registration_throughput.py --n 2000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from shared.contracts.venues import StopRegistrationOpenedV1
from shared.localstack import processes as p

from registration.samples import publish, stop_snapshot

HAS_FREE_PLACE = {"$expr": {"$lt": [{"$add": ["$confirmed", "$offered"]}, "$capacity"]}}


def person(i: int) -> dict[str, object]:
    return {"email": f"bench.{i}@example.org", "first_name": "Bench", "last_name": f"Person {i}",
            "organisation": "IntercoTOUR", "profile": "other",
            "consents": {"contact": True, "photo": False, "recording": False}}


async def run_concurrently(n: int, concurrency: int, one) -> tuple[float, list[float]]:
    """Run ``one(i)`` for i < n with ``concurrency`` workers; (wall seconds, latencies in ms)."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await one(i)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def bench_service(url: str, bootstrap: str, n: int, concurrency: int, capacity: int) -> dict[str, float]:
    snap = stop_snapshot(capacity=capacity)
    await publish(bootstrap, StopRegistrationOpenedV1(stop_id=snap.stop_id, stop=snap))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        for _ in range(300):
            if (await http.get(f"/api/v1/stops/{snap.stop_id}/availability")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        statuses: dict[str, int] = {}

        async def sign_up(i: int) -> None:
            answer = await http.post(f"/api/v1/stops/{snap.stop_id}/registrations", json=person(i))
            status = answer.json().get("status") if answer.status_code == 201 else str(answer.status_code)
            statuses[status] = statuses.get(status, 0) + 1

        wall, latencies = await run_concurrently(n, concurrency, sign_up)
        availability = (await http.get(f"/api/v1/stops/{snap.stop_id}/availability")).json()
    print(f"  answers: {statuses}; availability after: {availability}")
    confirmed = statuses.get("confirmed", 0)
    return {"signups_per_s": n / wall, "p50_ms": statistics.median(latencies),
            "p99_ms": statistics.quantiles(latencies, n=100)[98],
            "overbooked": max(0, confirmed - capacity, availability["confirmed"] - capacity),
            "errors": n - confirmed - statuses.get("waitlisted", 0)}


async def bench_raw(mongo_url: str, n: int, concurrency: int, capacity: int) -> float:
    """The same write pattern without the service: registration insert + conditional counter update."""
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[f"raw_{uuid.uuid4().hex[:8]}"]
    stop_id = "raw-stop"
    await db.stops.insert_one({"_id": stop_id, "status": "registration_open", "capacity": capacity,
                               "confirmed": 0, "offered": 0, "waitlisted": 0, "waitlist_seq": 0})

    async def sign_up(i: int) -> None:
        async def txn(session) -> None:
            stop = await db.stops.find_one_and_update(
                {"_id": stop_id, "status": "registration_open", "waitlisted": 0, **HAS_FREE_PLACE},
                {"$inc": {"confirmed": 1}}, return_document=ReturnDocument.AFTER, session=session)
            if stop is None:
                stop = await db.stops.find_one_and_update(
                    {"_id": stop_id}, {"$inc": {"waitlisted": 1, "waitlist_seq": 1}},
                    return_document=ReturnDocument.AFTER, session=session)
            await db.registrations.insert_one({
                "_id": uuid.uuid4().hex, "stop_id": stop_id, **person(i), "status": "confirmed",
                "active": True, "created_at": datetime.now(UTC)}, session=session)

        async with client.start_session() as session:
            while True:
                try:
                    await session.with_transaction(txn, read_concern=ReadConcern("snapshot"),
                                                   write_concern=WriteConcern("majority"))
                    return
                except PyMongoError as exc:  # with_transaction gave up on a conflict: go again
                    if not exc.has_error_label("TransientTransactionError"):
                        raise

    wall, _ = await run_concurrently(n, concurrency, sign_up)
    await client.close()
    return n / wall


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="sign-ups to send")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--capacity", type=int, default=None, help="places at the stop (default n/2)")
    args = parser.parse_args()
    capacity = args.capacity or args.n // 2
    workdir = Path(tempfile.mkdtemp(prefix="registration-bench-"))
    kafka_port, mongo_port, http_port = p.free_port(), p.free_port(), p.free_port()
    kafka = p.tansu(kafka_port, workdir / "kafka.log").start()
    mongo = p.secantus(mongo_port, ":memory:", workdir / "mongo.log").start()
    service = None
    try:
        p.wait_for_port("127.0.0.1", kafka_port, 30, kafka.proc)
        p.wait_for_mongo(mongo_port, 60, mongo)
        bootstrap, mongo_url = f"127.0.0.1:{kafka_port}", p.mongo_url(mongo_port)
        env = {"REGISTRATION_HTTP_PORT": str(http_port), "REGISTRATION_MONGO_URL": mongo_url,
               "REGISTRATION_KAFKA_BOOTSTRAP": bootstrap, "REGISTRATION_LOG_LEVEL": "WARNING",
               "REGISTRATION_RATE_LIMITS_ENABLED": "false"}
        service = p.ManagedProcess("registration", [sys.executable, "-m", "registration.main"], env=env,
                                   log_path=workdir / "registration.log").start()
        url = f"http://127.0.0.1:{http_port}"
        p.wait_for_http(f"{url}/ready", 90, service.proc)

        print(f"registration service: {args.n} sign-ups, concurrency {args.concurrency}, capacity {capacity}")
        result = await bench_service(url, bootstrap, args.n, args.concurrency, capacity)
        service.stop()
        print(f"  {result['signups_per_s']:.0f} sign-ups/s, p50 {result['p50_ms']:.1f} ms, "
              f"p99 {result['p99_ms']:.1f} ms, overbooked {result['overbooked']}, errors {result['errors']}")
        print(f"raw PyMongo, same documents and concurrency: {args.n} transactions")
        raw = await bench_raw(mongo_url, args.n, args.concurrency, capacity)
        print(f"  {raw:.0f} transactions/s")
        # Context, not the target: at concurrency 1 the single counter document never conflicts.
        raw_serial = await bench_raw(mongo_url, args.n, 1, capacity)
        print(f"  {raw_serial:.0f} transactions/s one at a time (no write conflicts)")
        ratio = result["signups_per_s"] / raw
        print(f"ratio service/raw: {ratio:.2f} (target >= 0.6)")
        print("command: " + shlex.join([os.path.relpath(sys.executable), *sys.argv]))
        print(json.dumps({"signups_per_s": round(result["signups_per_s"], 1), "p50_ms": round(result["p50_ms"], 1),
                          "p99_ms": round(result["p99_ms"], 1), "raw_per_s": round(raw, 1),
                          "ratio": round(ratio, 2), "overbooked": result["overbooked"],
                          "raw_serial_per_s": round(raw_serial, 1)}))
    finally:
        for proc in (service, kafka, mongo):
            if proc is not None:
                proc.stop()


if __name__ == "__main__":
    asyncio.run(main())
