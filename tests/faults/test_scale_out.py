"""Horizontal scaling under a crash: two instances of registration and of notifications.

Its own stack (leases shortened to 3 s so fail-over fits the budget), a second
instance of registration and notifications on other ports (same databases, same
consumer groups), sign-ups to one small stop spread over both registration
instances as a load balancer would, and, mid-run, kill -9 of the registration and
the notifications instance that hold their service's relay lease. A request that
was in flight on the dead instance is retried on the survivor with the same
Idempotency-Key (what a load balancer's client does). Then the fault suite's
invariants: nobody overbooked, every 201 stored once, every accepted sign-up got
exactly one email, nothing left in any outbox — and the `locks` collection shows one
holder per lease, moved to the survivor once the dead one's lease expired.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared.localstack.stack import LocalStack, StackPorts
from shared.testing.eventually import eventually
from shared.testing.mail import MailCaptureClient
from shared.testing.stack import TEST_ENV
from tests.e2e.circuit import Circuit

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

LEASE_SECONDS = 3
SIGNUPS = 60
CAPACITY = 5
CONCURRENCY = 6
KILL_AFTER = 20  # answers received before the kills
LEASES = {"registration": ("registration.relay", "registration.timers"),
          "notifications": ("notifications.relay", "notifications.timers", "notifications.fanout")}


def scale_env() -> dict[str, dict[str, str]]:
    env = {name: dict(values) for name, values in TEST_ENV.items()}
    for name in LEASES:
        env.setdefault(name, {})["LEASE_SECONDS"] = str(LEASE_SECONDS)
    env["registration"]["SIGNUPS_PER_MINUTE"] = "100000"  # every sign-up comes from one client address
    # A delivery claimed by a sender that dies is claimed again after this (default 120 s).
    env["notifications"]["DELIVERY_LEASE_SECONDS"] = "8"
    return env


@pytest.fixture(scope="module")
def scaled() -> Iterator[LocalStack]:
    stack = LocalStack(Path(tempfile.mkdtemp(prefix="intercotour-scale-")), StackPorts.free(), extra_env=scale_env())
    stack.start(seed=False)
    try:
        stack.start_instance("registration", 1)
        stack.start_instance("notifications", 1)
        yield stack
    finally:
        stack.stop()


def holder_pid(lock: dict | None) -> int | None:
    """Leases are owned by ``host:pid:nonce``."""
    return int(lock["owner"].split(":")[1]) if lock else None


async def leases(db) -> dict[str, dict]:
    return {doc["_id"]: doc async for doc in db["locks"].find({})}


async def test_two_instances_survive_the_kill_of_one_with_every_invariant(scaled):
    started = time.monotonic()
    circuit = Circuit(scaled.urls)
    staff = await circuit.staff()
    territory_id, host = await circuit.new_host(staff, "CVL")
    stop = await circuit.open_stop(staff, host, territory_id, "CVL", capacity=CAPACITY)
    stop_id = stop["id"]

    instances = {
        "registration": {"registration": scaled.processes["registration"],
                         "registration#1": scaled.processes["registration#1"]},
        "notifications": {"notifications": scaled.processes["notifications"],
                          "notifications#1": scaled.processes["notifications#1"]},
    }
    reg_urls = [scaled.urls["registration"], scaled.instance_urls["registration#1"]]
    mongo = AsyncMongoClient(scaled.mongo_url, tz_aware=True)
    dbs = {name: mongo[name] for name in LEASES}
    tag = uuid.uuid4().hex[:6]
    emails = [f"scale-{tag}-{i}@example.org" for i in range(SIGNUPS)]
    answers: dict[str, httpx.Response] = {}
    retried: list[str] = []
    killed: dict[str, str] = {}
    before: dict[str, dict[str, dict]] = {}
    enough = asyncio.Event()

    async def sign_up(http: httpx.AsyncClient, i: int) -> None:
        body = {"email": emails[i], "first_name": "Camille", "last_name": f"Scale {i}", "organisation": "Test",
                "profile": "public_sector_staff", "consents": {"contact": True, "photo": False, "recording": False}}
        headers = {"Idempotency-Key": f"{tag}-{i}"}
        for attempt in range(20):
            url = reg_urls[(i + attempt) % 2]  # round robin; after a failure, the other instance
            try:
                answer = await http.post(f"{url}/api/v1/stops/{stop_id}/registrations", json=body, headers=headers)
            except httpx.TransportError:
                retried.append(emails[i])
                await asyncio.sleep(0.2)
                continue
            if answer.status_code == 503:  # conflict retries exhausted: Retry-After
                await asyncio.sleep(0.2)
                continue
            answers[emails[i]] = answer
            if len(answers) >= KILL_AFTER:
                enough.set()
            return
        raise AssertionError(f"sign-up {i} never answered")

    async def kill_the_lease_holders() -> None:
        await enough.wait()
        for service, procs in instances.items():
            before[service] = await leases(dbs[service])
            pid = holder_pid(before[service].get(f"{service}.relay"))
            [victim] = [name for name, proc in procs.items() if proc.pid == pid]
            procs[victim].kill()  # kill -9 of the process group
            killed[service] = victim

    counter = iter(range(SIGNUPS))

    async def worker(http: httpx.AsyncClient) -> None:
        for i in counter:
            await sign_up(http, i)

    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(kill_the_lease_holders(), *(worker(http) for _ in range(CONCURRENCY)))
    survivors = {service: next(proc for name, proc in procs.items() if name != killed[service])
                 for service, procs in instances.items()}

    # Every sign-up was answered 201 (confirmed or waitlisted), none refused.
    assert sorted(answers) == sorted(emails)
    assert {a.status_code for a in answers.values()} == {201}, Counter(a.status_code for a in answers.values())
    ids = {email: a.json()["id"] for email, a in answers.items()}
    assert len(set(ids.values())) == SIGNUPS

    # No overbooking, and every 201 exists exactly once (no extra registration either).
    regs = await dbs["registration"]["registrations"].find({"stop_id": stop_id}).to_list()
    assert Counter(r["_id"] for r in regs) == Counter(ids.values())
    confirmed = [r for r in regs if r["status"] == "confirmed"]
    assert len(confirmed) == CAPACITY
    counters = await dbs["registration"]["stops"].find_one({"_id": stop_id})
    assert counters["confirmed"] == CAPACITY and counters["waitlisted"] == SIGNUPS - CAPACITY

    # Every accepted sign-up got exactly one email (nothing lost, nothing twice).
    async with MailCaptureClient(scaled.urls["mail"]) as mail:
        async def every_mail_arrived() -> Counter:
            per_address = Counter(entry["Address"].lower() for m in await mail.messages(limit=5000)
                                  for entry in m.get("To") or [] if entry["Address"].startswith(f"scale-{tag}-"))
            assert len(per_address) == SIGNUPS, f"{len(per_address)}/{SIGNUPS} addresses got mail"
            return per_address

        await eventually(every_mail_arrived, timeout=90, interval=1)

        # Once every delivery is recorded as sent, nothing can be sent again: count then.
        async def all_recorded_sent() -> bool:
            found = await dbs["notifications"]["deliveries"].find(
                {"recipient": {"$regex": f"^scale-{tag}-"}}, {"status": 1}).to_list()
            statuses = Counter(d["status"] for d in found)
            assert statuses == {"sent": SIGNUPS}, statuses
            return True

        await eventually(all_recorded_sent, timeout=60, interval=0.5)
        per_address = await every_mail_arrived()
        # Which delivery each copy carries (the sender stamps X-IntercoTOUR-Delivery).
        deliveries: dict[str, set[str]] = {}
        message_ids: dict[str, set[str]] = {}
        for m in await mail.messages(limit=5000):
            address = (m.get("To") or [{}])[0].get("Address", "").lower()
            if address.startswith(f"scale-{tag}-"):
                headers = {k.lower(): v for k, v in (await mail.headers(m["ID"])).items()}
                deliveries.setdefault(address, set()).update(headers["x-intercotour-delivery"])
                message_ids.setdefault(address, set()).add(m["MessageID"])
    # Exactly one email per accepted sign-up: one delivery each, nothing lost, nothing made twice.
    assert {a: len(ids) for a, ids in deliveries.items() if len(ids) != 1} == {}
    # SMTP has no transaction to join: a sender killed between the server's 250 and recording
    # "sent" (outcomes are flushed every 0.1 s) sends that same delivery again when its claim
    # expires. Such a re-send is the only extra copy allowed: the same message, with the same
    # Message-ID (a receiving MTA or mailbox drops it), counted in the report.
    assert {a: ids for a, ids in message_ids.items() if len(ids) != 1} == {}
    resent = {a: n - 1 for a, n in per_address.items() if n != 1}

    # Nothing left to publish in either service's outbox.
    async def outboxes_empty() -> bool:
        counts = {name: await db["outbox"].count_documents({}) for name, db in dbs.items()}
        assert counts == {"registration": 0, "notifications": 0}, counts
        return True

    await eventually(outboxes_empty, timeout=30, interval=0.5)

    # One holder per lease; the dead instance's leases moved to the survivor after their ttl.
    for service, names in LEASES.items():
        assert holder_pid(before[service][f"{service}.relay"]) == instances[service][killed[service]].pid

        async def held_by_survivor() -> dict[str, dict]:
            now = datetime.now(UTC)
            locks = await leases(dbs[service])
            assert set(names) <= set(locks), locks
            for name in names:
                assert holder_pid(locks[name]) == survivors[service].pid, (name, locks[name], survivors[service].pid)
                assert locks[name]["expires_at"] > now, (name, locks[name])
            return locks

        after = await eventually(held_by_survivor, timeout=30, interval=0.5)
        assert after[f"{service}.relay"]["owner"] != before[service][f"{service}.relay"]["owner"]
    await mongo.close()
    for service, proc in survivors.items():
        assert proc.alive(), f"{service} survivor died:\n{scaled.log_tail(service)}"
    print(f"scale-out: {SIGNUPS} sign-ups, {len(retried)} retried after the kill of {killed}; "
          f"same delivery re-sent after the sender's kill: {sum(resent.values())}; "
          f"{time.monotonic() - started:.0f}s")
