"""Fault suite: kill, stop and restart the parts of the stack under load, then check nothing
accepted was lost or done twice (issue 8). Figures and what each fault does: docs/reliability.md.

While a load of sign-ups, cancellations and replay publications runs (asyncio tasks, HTTP only),
each scenario injects one fault, waits for recovery, stops the load, then asserts:
every sign-up that got a 201 exists exactly once; no stop has more confirmed places than capacity;
every expected email was sent exactly once (mail capture); every outbox is empty; the dead-letter
collections hold only the poison messages injected at the start. A summary table is printed and
written to test-artifacts/faults-summary.txt.

The suite starts its OWN stack (it kills things), not the session's ``local_stack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from shared.localstack.stack import LocalStack, StackPorts
from shared.testing.eventually import eventually
from shared.testing.mail import MailCaptureClient
from shared.testing.stack import TEST_ENV
from tests.e2e.circuit import Circuit, token_from

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

DATABASES = ("venues", "registration", "replays", "notifications")
# A sender killed between SMTP and recording "sent" re-sends after this lease (default 120 s).
FAULT_ENV = {**TEST_ENV, "notifications": {**TEST_ENV["notifications"], "DELIVERY_LEASE_SECONDS": "5"}}
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "faults-summary.txt"
SMALL_CAPACITY = 8
BIG_CAPACITY = 10_000
RECOVERY_TIMEOUT = 120.0
POISON_TOPIC = "venues.stops.v1"


# ------------------------------------------------------------------ the stack and its world

@pytest.fixture(scope="module")
def stack():
    stack = LocalStack(Path(tempfile.mkdtemp(prefix="intercotour-faults-")), StackPorts.free(), extra_env=FAULT_ENV)
    stack.start(seed=True)
    try:
        yield stack
    finally:
        stack.stop()
        # keep the logs for a post-mortem, drop the database files
        shutil.rmtree(ARTIFACT.parent / "faults-logs", ignore_errors=True)
        shutil.copytree(stack.log_dir, ARTIFACT.parent / "faults-logs")
        shutil.rmtree(stack.data_dir, ignore_errors=True)


@dataclass
class World:
    stack: LocalStack
    circuit: Circuit
    staff: str
    territory_id: str
    host: str
    region: str
    big_stop: str
    replay_targets: list[tuple[str, str]]  # (held stop id, host token of its region)
    poison_keys: set[str]
    seasons: Iterator[int] = field(default_factory=lambda: iter(range(date.today().year + 3, date.today().year + 40)))

    def mongo(self) -> AsyncMongoClient:
        return AsyncMongoClient(self.stack.mongo_url, serverSelectionTimeoutMS=20_000)

    async def small_stop(self) -> str:
        stop = await self.circuit.open_stop(self.staff, self.host, self.territory_id, self.region,
                                            capacity=SMALL_CAPACITY, season=next(self.seasons))
        return stop["id"]


@pytest.fixture(scope="module")
async def world(stack) -> World:
    circuit = Circuit(stack.urls)
    staff = await circuit.staff()
    region = "CVL"
    territory_id, host = await circuit.new_host(staff, region)
    big = await circuit.open_stop(staff, host, territory_id, region, capacity=BIG_CAPACITY,
                                  season=date.today().year + 2)
    targets: list[tuple[str, str]] = []
    for held_region in ("BRE", "NOR", "OCC"):
        token = await circuit.login(f"host-{held_region.lower()}@intercotour.local", "intercotour-host")
        async with circuit.client("venues") as venues:
            stops = (await venues.get("/stops", params={"season": 2022, "region": held_region})).json()["items"]
        targets += [(s["id"], token) for s in stops if s["status"] == "held"]
    assert targets, "the seed holds the 2022 season"
    poison = await inject_poison(stack)
    return World(stack, circuit, staff, territory_id, host, region, big["id"], targets, poison)


async def inject_poison(stack: LocalStack) -> set[str]:
    """Two malformed records on venues.stops.v1: every consumer of the topic must dead-letter them."""
    keys = {f"poison-noheaders-{uuid.uuid4().hex[:6]}", f"poison-badjson-{uuid.uuid4().hex[:6]}"}
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key in sorted(keys):
            headers = [] if "noheaders" in key else [
                ("ce_id", uuid.uuid4().hex.encode()), ("ce_type", b"venues.stop.cancelled.v1"),
                ("ce_source", b"faults-suite"), ("ce_specversion", b"1.0")]
            await producer.send_and_wait(POISON_TOPIC, value=b"{not json", key=key.encode(), headers=headers)
    finally:
        await producer.stop()
    return keys


# ------------------------------------------------------------------ the load

@dataclass
class Load:
    world: World
    small_stop: str
    tag: str
    requests: int = 0
    accepted: int = 0
    signups: dict[str, tuple[str, str]] = field(default_factory=dict)  # registration id -> (stop id, email)
    manage: dict[str, str] = field(default_factory=dict)              # big-stop registration id -> token
    cancelled: set[str] = field(default_factory=set)                   # cancellations answered 200
    published: set[str] = field(default_factory=set)                   # replays whose publish answered 200
    replay_titles: set[str] = field(default_factory=set)
    errors: Counter = field(default_factory=Counter)
    samples: dict[int, str] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _seq: int = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self, workers: int = 4) -> None:
        urls = self.world.stack.urls
        async with (httpx.AsyncClient(base_url=f"{urls['registration']}/api/v1", timeout=15) as registration,
                    httpx.AsyncClient(base_url=f"{urls['replays']}/api/v1", timeout=15) as replays):
            await asyncio.gather(*(self._worker(registration, random.Random(i)) for i in range(workers)),
                                 self._replay_worker(replays))

    async def _call(self, send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response | None:
        self.requests += 1
        try:
            response = await send()
        except httpx.HTTPError as exc:
            self.errors[type(exc).__name__] += 1
            return None
        if response.is_success:
            self.accepted += 1
        else:
            self.errors[str(response.status_code)] += 1
            self.samples.setdefault(response.status_code, f"{response.request.url.path}: {response.text[:200]}")
        return response

    async def _pause(self, response: httpx.Response | None) -> None:
        # Refusals while something is down are not accepted: back off instead of hammering.
        await asyncio.sleep(0.02 if response is not None and response.is_success else 0.3)

    async def _worker(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        while not self._stop.is_set():
            choice = rng.random()
            if choice < 0.2 and self.manage:
                registration_id = rng.choice(sorted(self.manage))
                token = self.manage.pop(registration_id)
                response = await self._call(lambda: client.post(f"/registrations/{registration_id}/cancel",
                                                                 params={"token": token}))
                if response is not None and response.status_code == 200:
                    self.cancelled.add(registration_id)
            else:
                response = await self.sign_up(client, self.world.big_stop if choice < 0.6 else self.small_stop)
            await self._pause(response)

    async def sign_up(self, client: httpx.AsyncClient, stop_id: str) -> httpx.Response | None:
        self._seq += 1
        email = f"{self.tag}-{self._seq}-{uuid.uuid4().hex[:6]}@example.org"
        response = await self._call(lambda: client.post(f"/stops/{stop_id}/registrations", json={
            "email": email, "first_name": "Camille", "last_name": "Durand", "organisation": "Ville de Test",
            "profile": "public_sector_staff", "consents": {"contact": True, "photo": False, "recording": False}}))
        if response is not None and response.status_code == 201:
            body = response.json()
            self.signups[body["id"]] = (stop_id, email)
            if stop_id == self.world.big_stop:
                self.manage[body["id"]] = token_from(body["manage_url"])
        return response

    async def _replay_worker(self, client: httpx.AsyncClient) -> None:
        """Create → ready → publish, one replay after another (each step retried while refused)."""
        n = 0
        while not self._stop.is_set():
            n += 1
            stop_id, token = self.world.replay_targets[n % len(self.world.replay_targets)]
            headers = {"Authorization": f"Bearer {token}"}
            title = f"Replay {self.tag} {n}"
            created = await self._call(lambda: client.post("/replays", headers=headers, json={
                "stop_id": stop_id, "title": title, "description": "Replay de test", "provider": "youtube",
                "url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "duration_s": 1200}))
            if created is None or created.status_code != 201:
                await self._pause(created)
                continue
            self.replay_titles.add(title)
            replay_id = created.json()["id"]
            for step in ("ready", "publish"):
                while not self._stop.is_set():
                    response = await self._call(lambda: client.post(f"/replays/{replay_id}/{step}", headers=headers))
                    if response is not None and response.status_code == 200:
                        break
                    await self._pause(response)
                else:
                    return
            self.published.add(replay_id)
            await asyncio.sleep(0.3)


# ------------------------------------------------------------------ checks

@dataclass
class Outcome:
    scenario: str
    requests: int
    accepted: int
    lost: int = 0
    duplicated: int = 0
    recovery_s: float = 0.0
    absorbed: int = 0  # redelivered events the consumers' inboxes recognised
    refusals: str = ""  # what the requests that were not accepted got (status or exception)
    problems: list[str] = field(default_factory=list)


ROWS: list[Outcome] = []


def table() -> str:
    head = (f"{'scenario':<28} {'requests':>8} {'accepted':>8} {'lost':>5} {'duplicated':>10} {'recovery_s':>10} "
            f"{'dups_absorbed':>13}")
    lines = [head, "-" * len(head)]
    lines += [f"{r.scenario:<28} {r.requests:>8} {r.accepted:>8} {r.lost:>5} {r.duplicated:>10} "
              f"{r.recovery_s:>10.1f} {r.absorbed:>13}" for r in ROWS]
    lines += ["", "not accepted, by answer:"] + [f"  {r.scenario}: {r.refusals or '-'}" for r in ROWS]
    return "\n".join(lines)


def write_table() -> str:
    text = table()
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(text + "\n")
    print("\n" + text)
    return text


def duplicates_absorbed(stack: LocalStack) -> int:
    total = 0
    for name in DATABASES:
        path = stack.log_dir / f"{name}.log"
        if path.exists():
            total += len(re.findall(r"event\.duplicate", path.read_text(errors="replace")))
    return total


async def settled(world: World, load: Load, timeout: float = RECOVERY_TIMEOUT) -> None:
    """Poll (never sleep) until the system is quiet: outboxes empty, no mail queued, expected mail in."""
    async def quiet() -> bool:
        client = world.mongo()
        try:
            for name in DATABASES:
                left = await client[name].outbox.count_documents({})
                assert left == 0, f"{name}: {left} outbox record(s) unpublished"
            queued = await client.notifications.deliveries.count_documents({"status": "queued", "channel": "email"})
            assert queued == 0, f"{queued} email(s) still queued"
            expected, _ = await expected_mail(client, load)
        finally:
            await client.close()
        async with MailCaptureClient(world.stack.urls["mail"]) as mail:
            seen = Counter(a["Address"].lower() for m in await mail.messages(limit=100_000) for a in m.get("To") or [])
        missing = [addr for addr, n in expected.items() if seen[addr] < n]
        assert not missing, f"{len(missing)} address(es) still waiting for mail, e.g. {missing[:3]}"
        return True

    await eventually(quiet, timeout=timeout, interval=1.0)


async def expected_mail(client: AsyncMongoClient, load: Load) -> tuple[dict[str, int], dict[str, dict]]:
    """One confirmation or waitlist mail per accepted sign-up, plus one per cancellation (big stop only,
    which never waitlists, so a cancellation never makes an offer)."""
    docs = {d["_id"]: d async for d in client.registration.registrations.find({"_id": {"$in": list(load.signups)}})}
    expected = {}
    for registration_id, (_stop_id, email) in load.signups.items():
        doc = docs.get(registration_id)
        expected[email] = 1 + (1 if doc is not None and doc["status"] == "cancelled" else 0)
    return expected, docs


async def check(world: World, load: Load, outcome: Outcome, resend_window: int = 0) -> Outcome:
    with contextlib.suppress(AssertionError):  # a timeout is reported below as lost/unpublished
        await settled(world, load, timeout=RECOVERY_TIMEOUT)
    problems = outcome.problems
    duplicates: list[str] = []
    if load.errors.get("500"):
        problems.append(f"{load.errors['500']} answer(s) 500 (an outage or a conflict must be a 503): {load.samples[500]}")
    client = world.mongo()
    try:
        expected, docs = await expected_mail(client, load)
        # every sign-up that got a 201 exists exactly once
        for registration_id, (stop_id, email) in load.signups.items():
            if registration_id not in docs:
                outcome.lost += 1
                problems.append(f"sign-up {registration_id} ({email}) answered 201 but is missing")
            same = await client.registration.registrations.count_documents({"stop_id": stop_id, "email": email})
            if same > 1:
                outcome.duplicated += same - 1
                problems.append(f"{email} registered {same} times at {stop_id}")
        for registration_id in load.cancelled:
            if docs.get(registration_id, {}).get("status") != "cancelled":
                outcome.lost += 1
                problems.append(f"cancellation of {registration_id} answered 200 but is not recorded")
        # no stop has more confirmed places than capacity
        for stop_id in (load.small_stop, world.big_stop):
            stop = await client.registration.stops.find_one({"_id": stop_id})
            taken = await client.registration.registrations.count_documents(
                {"stop_id": stop_id, "status": {"$in": ["confirmed", "offered", "checked_in"]}})
            if taken > stop["capacity"] or stop["confirmed"] + stop.get("offered", 0) > stop["capacity"]:
                problems.append(f"stop {stop_id}: {taken} places taken for capacity {stop['capacity']}")
            if stop["confirmed"] != await client.registration.registrations.count_documents(
                    {"stop_id": stop_id, "status": "confirmed"}):
                problems.append(f"stop {stop_id}: confirmed counter {stop['confirmed']} disagrees with registrations")
        # replays: every accepted publication is published, every created replay exists once
        for title in load.replay_titles:
            n = await client.replays.replays.count_documents({"title": title})
            if n != 1:
                outcome.duplicated += max(0, n - 1)
                problems.append(f"replay {title!r} exists {n} times")
        for replay_id in load.published:
            doc = await client.replays.replays.find_one({"_id": replay_id})
            if doc is None or doc.get("publication") != "published":
                outcome.lost += 1
                problems.append(f"replay {replay_id} publish answered 200 but is {doc and doc.get('publication')}")
        # no outbox record stays unpublished
        for name in DATABASES:
            left = await client[name].outbox.count_documents({})
            if left:
                problems.append(f"{name}: {left} outbox record(s) still unpublished")
        # the DLQ holds only the poison messages the suite injected
        for name in DATABASES:
            async for dead in client[name].dead_letters.find({}, {"key": 1, "reason": 1}):
                if dead.get("key") not in world.poison_keys:
                    problems.append(f"{name}: unexpected dead letter {dead['_id']}: {dead.get('reason')}")
    finally:
        await client.close()
    # every expected email sent exactly once
    async with MailCaptureClient(world.stack.urls["mail"]) as mail:
        seen = Counter(a["Address"].lower() for m in await mail.messages(limit=100_000) for a in m.get("To") or [])
    for email, wanted in expected.items():
        got = seen[email]
        if got < wanted:
            outcome.lost += wanted - got
            problems.append(f"{email}: {got} mail(s), expected {wanted}")
        elif got > wanted:
            outcome.duplicated += got - wanted
            duplicates.append(f"{email}: {got} mails, expected {wanted} (duplicate)")
    # SMTP is at least once: a sender killed after the server accepted a message and before it
    # recorded "sent" sends it again after its lease (docs/reliability.md). Only a kill of the
    # sender may do that, and at most for the messages it had in flight.
    if outcome.duplicated > resend_window:
        problems.extend(duplicates)
    return outcome


# ------------------------------------------------------------------ one scenario

async def scenario(world: World, name: str, fault: Callable[[Load], Awaitable[None]], *,
                   before: int = 20, after: int = 20, resend_window: int = 0) -> Outcome:
    """Load → fault (recovery timed) → more load → stop → check; the row joins the summary table."""
    small = await world.small_stop()
    absorbed_before = duplicates_absorbed(world.stack)
    load = Load(world, small, tag=re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + f"-{uuid.uuid4().hex[:4]}")
    running = asyncio.create_task(load.run())
    try:
        await eventually(lambda: load.accepted >= before, timeout=60, interval=0.1)
        started = time.monotonic()
        await fault(load)
        recovery = time.monotonic() - started
        mark = load.accepted
        await eventually(lambda: load.accepted >= mark + after, timeout=90, interval=0.2)
    finally:
        load.stop()
        await running
    print(f"{name}: refusal samples {load.samples}")
    outcome = Outcome(name, load.requests, load.accepted, recovery_s=recovery,
                      refusals=", ".join(f"{k}×{v}" for k, v in load.errors.most_common()))
    await check(world, load, outcome, resend_window)
    outcome.absorbed = duplicates_absorbed(world.stack) - absorbed_before
    ROWS.append(outcome)
    write_table()
    assert not outcome.problems, "\n".join([*outcome.problems[:20], "", table()])
    return outcome


def kill_and_restart(stack: LocalStack, name: str) -> Callable[[Load], Awaitable[None]]:
    async def fault(_load: Load) -> None:
        stack.kill(name)  # kill -9 of the process group
        await asyncio.to_thread(stack.restart, name)

    return fault


# ------------------------------------------------------------------ the scenarios

async def test_poison_messages_are_dead_lettered_with_a_reason_and_the_rest_flows(world):
    client = world.mongo()
    try:
        async def dead_lettered():
            found = {}
            for name in ("registration", "replays", "notifications"):
                found[name] = [d async for d in client[name].dead_letters.find({"key": {"$in": list(world.poison_keys)}})]
                assert found[name], f"{name} has not dead-lettered the poison records yet"
            return found

        found = await eventually(dead_lettered, timeout=60, interval=0.5)
    finally:
        await client.close()
    for name, docs in found.items():
        assert all(d["reason"] for d in docs), name
        assert any("missing CloudEvents header" in d["reason"] for d in docs), (name, [d["reason"] for d in docs])
    # the rest flows: a sign-up after the poison still gets its mail
    email = f"after-poison-{uuid.uuid4().hex[:6]}@example.org"
    assert (await world.circuit.sign_up(world.big_stop, email)).status_code == 201
    await world.circuit.mails_to(email, timeout=60)


@pytest.mark.parametrize("service", ["venues", "registration", "replays", "notifications", "portal"])
async def test_kill_9_a_service_and_restart_it(world, service):
    # notifications' sender may have up to 2 × SMTP_CONCURRENCY (16) messages in flight when killed
    await scenario(world, f"kill -9 {service}", kill_and_restart(world.stack, service),
                   resend_window=32 if service == "notifications" else 0)


async def test_database_stopped_and_restarted(world):
    stack = world.stack

    async def fault(_load: Load) -> None:
        await asyncio.to_thread(stack.processes["mongodb"].stop)  # SIGTERM: see docs/reliability.md for kill -9
        await asyncio.sleep(2)  # the outage itself: writes answer 503 meanwhile
        await asyncio.to_thread(stack.restart, "mongodb")

    await scenario(world, "database stop/restart", fault)


async def test_relay_killed_between_publishing_and_marking(world):
    """A burst of writes, then kill -9 of registration while its relay is publishing: records sent but
    not yet deleted are published again on restart and the consumers' inboxes absorb them."""
    stack = world.stack

    async def fault(load: Load) -> None:
        async with httpx.AsyncClient(base_url=f"{stack.urls['registration']}/api/v1", timeout=15) as client:
            burst = [asyncio.create_task(load.sign_up(client, world.big_stop)) for _ in range(60)]
            # kill -9 in the middle of the burst: the relay is publishing the first answers' records
            await eventually(lambda: sum(task.done() for task in burst) >= 20, timeout=30, interval=0.01)
            stack.kill("registration")
            await asyncio.gather(*burst)
        await asyncio.to_thread(stack.restart, "registration")

    await scenario(world, "relay killed mid-publish", fault)


# Last: the broker comes back empty (a new log, with a new cluster id), so it runs after the other scenarios.
async def test_broker_stopped_and_restarted_empty(world):
    stack = world.stack

    async def fault(_load: Load) -> None:
        await asyncio.to_thread(stack.processes["kafka"].stop)
        await asyncio.sleep(2)  # the outage itself: writes answer 503 meanwhile (those accepted before wait in outboxes)
        await asyncio.to_thread(stack.restart, "kafka")

    # Asserted as everywhere, emails included: what the empty broker lost, the relays publish again
    # (RELAY_RETAIN_SECONDS in the local stack) ...
    await scenario(world, "broker stop/restart (empty)", fault)
    # ... and the running services carry on without a restart: a new sign-up gets its mail.
    email = f"after-broker-{uuid.uuid4().hex[:6]}@example.org"
    assert (await world.circuit.sign_up(world.big_stop, email)).status_code == 201
    await world.circuit.mails_to(email, timeout=60)


def test_summary_table_is_written():
    text = write_table()
    assert ARTIFACT.exists() and "scenario" in text
