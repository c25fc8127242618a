"""Hostile Kafka input: on every topic each service consumes, malformed JSON, invalid UTF-8, a
1.5 MB body, wrongly-typed fields for a type the service handles, a non-object body, missing and
broken CloudEvents headers — each lands in that service's ``dead_letters`` collection with a
reason, and a valid event published after them is still processed (its id reaches the inbox).

The four services run in-process (create_app + lifespan) on the local broker and database, each
with its own consumer group and database.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI

from shared.auth import ensure_keypair
from shared.contracts import topics
from shared.contracts.base import CloudEventHeaders, Event
from shared.contracts.registration import OfferDeclinedV1, Occupancy
from shared.contracts.replays import ReplayPublishedV1, ReplaySnapshot
from shared.contracts.venues import StopRegistrationOpenedV1
from shared.messaging.broker import ensure_topics
from shared.testing.eventually import eventually
from shared.testing.http import running_app
from shared.testing.infra import unique_db

from registration.samples import stop_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SERVICES = ("venues", "registration", "replays", "notifications")
OVERSIZED = 1_500_000


def build(service: str, infra, keys: Path) -> FastAPI:
    common = dict(service_name=unique_db(f"hostile_{service}"), mongo_url=infra.mongo_url,
                  kafka_bootstrap=infra.kafka_bootstrap, jwt_public_key_file=keys / "jwt_public.pem",
                  portal_base_url="http://portal.test", relay_poll_seconds=0.5, timer_poll_seconds=0.5,
                  consumer_retries=0, kafka_partitions=1)
    if service == "venues":
        from venues.config import Settings
        from venues.main import create_app
        return create_app(Settings(**common, keys_dir=keys))
    if service == "registration":
        from registration.config import Settings
        from registration.main import create_app
        return create_app(Settings(**common))
    if service == "replays":
        from replays.config import Settings
        from replays.main import create_app
        return create_app(Settings(**common))
    from notifications.config import Settings
    from notifications.main import create_app
    return create_app(Settings(**common, smtp_port=9, sender_poll_seconds=5))


@dataclass
class Running:
    apps: dict[str, FastAPI]

    def runtime(self, service: str) -> Any:
        return self.apps[service].state.runtime

    def handled_types(self, service: str, topic: str) -> list[str]:
        consumer = self.runtime(service).consumer
        return sorted(t for t, route in consumer._routes.items() if route.model.TOPIC == topic)


@pytest_asyncio.fixture(scope="module")
async def running(infra, tmp_path_factory) -> AsyncIterator[Running]:
    keys = tmp_path_factory.mktemp("hostile-kafka-keys")
    ensure_keypair(keys)
    apps = {service: build(service, infra, keys) for service in SERVICES}
    await ensure_topics(infra.kafka_bootstrap, [topics.dlq(a.state.runtime.settings.service_name) for a in apps.values()], 1)
    async with contextlib.AsyncExitStack() as stack:
        # Consumer-group joins take seconds each on Tansu: start the four together.
        await asyncio.gather(*(stack.enter_async_context(running_app(app)) for app in apps.values()))
        yield Running(apps)


def headers_for(event_type: str, **overrides: Any) -> list[tuple[str, bytes]]:
    ce = CloudEventHeaders(type=event_type, source="hostile-test")
    values = dict(ce.to_kafka())
    for name, value in overrides.items():
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
    return list(values.items())


def hostile_cases(event_type: str | None) -> dict[str, tuple[bytes, list[tuple[str, bytes]]]]:
    """name → (value, headers). Typed cases only where the service handles a type on the topic."""
    cases: dict[str, tuple[bytes, list[tuple[str, bytes]]]] = {
        "no_headers": (b'{"stop_id": "s"}', []),
        "no_ce_type": (b'{"stop_id": "s"}', headers_for("x", ce_type=None)),
        "no_ce_id": (b'{"stop_id": "s"}', headers_for("x", ce_id=None)),
    }
    if event_type:
        cases.update({
            "malformed_json": (b'{"stop_id": "s", "stop": {', headers_for(event_type)),
            "invalid_utf8": (b'\xff\xfe\x00{"stop_id": 1}', headers_for(event_type)),
            "oversized": (b'{"stop_id": "s", "padding": "' + b"x" * OVERSIZED + b'"}', headers_for(event_type)),
            "wrong_types": (b'{"stop_id": 12, "stop": "nope", "registration_id": [], "email": false, '
                            b'"occupancy": "full", "replay": 5, "status": 3}', headers_for(event_type)),
            "not_an_object": (b'["stop_id", "s"]', headers_for(event_type)),
            "bad_ce_time": (b'{"stop_id": "s"}', headers_for(event_type, ce_time=b"yesterday")),
            "empty_body": (b"", headers_for(event_type)),
        })
    return cases


def valid_events() -> list[Event]:
    """One handled event per consumed topic, on a fresh stop."""
    snap = stop_snapshot()
    replay_id = f"rep_{uuid.uuid4().hex[:8]}"
    replay = ReplaySnapshot(replay_id=replay_id, stop_id=snap.stop_id, title="Plénière", provider="url",
                            url="https://video.example.org/a.mp4", embed_url="https://video.example.org/a.mp4",
                            duration_s=60, processing="ready", publication="published", season=2022, region="BRE",
                            city="Quimperlé", theme="Mobilités")
    return [
        StopRegistrationOpenedV1(stop_id=snap.stop_id, stop=snap),
        OfferDeclinedV1(registration_id=f"reg_{uuid.uuid4().hex[:8]}", stop_id=snap.stop_id, email="x@example.org",
                        status="cancelled", occupancy=Occupancy(capacity=10, confirmed=1)),
        ReplayPublishedV1(replay_id=replay_id, stop_id=snap.stop_id, replay=replay, batch_id=f"b_{replay_id}",
                          published_at=datetime.now(UTC)),
    ]


async def test_poison_messages_are_dead_lettered_with_a_reason_and_consumers_keep_going(infra, running):
    consumed = {service: running.runtime(service).consumer.topics for service in SERVICES}
    all_topics = sorted({t for ts in consumed.values() for t in ts})
    assert topics.VENUES_STOPS in all_topics and topics.REGISTRATION_REGISTRATIONS in all_topics

    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all", max_request_size=4 * 1024 * 1024)
    await producer.start()
    expected: dict[str, dict[str, str]] = {s: {} for s in SERVICES}  # service → key → case
    try:
        for topic in all_topics:
            # One typed case set per (topic, type handled by some service); each service checks what it handles.
            types = {s: (running.handled_types(s, topic) or [None])[0] for s in SERVICES if topic in consumed[s]}
            for event_type in sorted({t for t in types.values()}, key=str):
                for case, (value, headers) in hostile_cases(event_type).items():
                    key = f"hostile-{case}-{uuid.uuid4().hex[:8]}"
                    await producer.send_and_wait(topic, value=value, key=key.encode(), headers=headers)
                    for service, handled in types.items():
                        untyped = case in ("no_headers", "no_ce_type", "no_ce_id")
                        if untyped or handled == event_type:
                            expected[service][key] = f"{topic} {case}"
        # Then valid events: each service must still process them.
        valid_ids: dict[str, str] = {}
        for event in valid_events():
            ce = CloudEventHeaders(type=event.TYPE, source="hostile-test", subject=event.subject())
            await producer.send_and_wait(event.TOPIC, value=event.to_json(), key=event.key().encode(),
                                         headers=ce.to_kafka())
            valid_ids[event.TYPE] = ce.id
    finally:
        await producer.stop()

    async def all_dead_lettered(service: str) -> bool:
        db = running.runtime(service).db
        docs = await db.dead_letters.find({"key": {"$in": list(expected[service])}}).to_list()
        found = {d["key"]: d for d in docs}
        missing = {k: v for k, v in expected[service].items() if k not in found}
        assert not missing, f"{service}: not dead-lettered: {sorted(missing.values())}"
        blank = [expected[service][k] for k, d in found.items() if not d.get("reason")]
        assert not blank, f"{service}: dead letters without a reason: {blank}"
        return True

    async def valid_processed(service: str) -> bool:
        runtime = running.runtime(service)
        handled = {t for t in runtime.consumer.event_types}
        wanted = [f"{runtime.settings.service_name}:{eid}" for t, eid in valid_ids.items() if t in handled]
        assert wanted, service
        done = await runtime.db.inbox.count_documents({"_id": {"$in": wanted}})
        assert done == len(wanted), f"{service}: {done}/{len(wanted)} valid events processed after the poison"
        return True

    for service in SERVICES:
        assert expected[service], service
        await eventually(lambda s=service: all_dead_lettered(s), timeout=90, interval=0.5)
        await eventually(lambda s=service: valid_processed(s), timeout=60, interval=0.5)
        # Reasons say what was wrong.
        db = running.runtime(service).db
        reasons = {expected[service][d["key"]].split()[1]: d["reason"]
                   async for d in db.dead_letters.find({"key": {"$in": list(expected[service])}})}
        assert "missing CloudEvents header" in reasons["no_headers"], reasons
        if "malformed_json" in reasons:
            assert reasons["malformed_json"].startswith("invalid "), reasons
            assert "ce_time" in reasons["bad_ce_time"], reasons
        # And each was published to <service>.dlq, the 1.5 MB one too (truncated there, whole in the collection).
        await dlq_has(infra, running.runtime(service).dead_letters.topic, set(expected[service]))
        # Still ready: the subscriber did not die on the way.
        ready = await running.runtime(service).readiness()
        assert ready["consumers"] == "ok", (service, ready)


async def dlq_has(infra, topic: str, keys: set[str], timeout: float = 60) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=infra.kafka_bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen: dict[str, dict[str, bytes]] = {}
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while keys - set(seen) and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    if record.key:
                        seen[record.key.decode()] = {k: v for k, v in record.headers or []}
    finally:
        await consumer.stop()
    missing = keys - set(seen)
    assert not missing, f"{topic}: not published: {sorted(missing)}"
    for key in keys:
        assert seen[key].get("dlq_error"), (topic, key, seen[key])
        if "oversized" in key:
            assert int(seen[key]["dlq_value_truncated_from"]) > OVERSIZED, seen[key]
