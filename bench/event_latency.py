"""Outbox → Kafka → consumer: commit-to-consume latency at a fixed rate, and the relay's
publish throughput next to raw aiokafka publishing of the same records, in one run.

    .venv/bin/python bench/event_latency.py [--rate 100] [--seconds 10] [--records 20000]
                                            [--kafka HOST:PORT --mongo URL]

Targets: p99 ≤ 50 ms at 100 events/s; relay ≥ 0.5 × raw throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from _common import command_line, infrastructure, print_result, summary_ms  # noqa: E402
from shared.config import BaseServiceSettings  # noqa: E402
from shared.contracts.base import Event  # noqa: E402
from shared.messaging.broker import ensure_topics, make_producer  # noqa: E402
from shared.messaging.lease import Lease  # noqa: E402
from shared.messaging.outbox import OUTBOX, outbox_record  # noqa: E402
from shared.messaging.relay import OutboxRelay  # noqa: E402
from shared.mongo import make_client  # noqa: E402
from shared.uow import UnitOfWork  # noqa: E402


class BenchTickV1(Event):
    TYPE: ClassVar[str] = "bench.tick.sent.v1"
    TOPIC: ClassVar[str] = ""
    stop_id: str
    seq: int
    padding: str = "x" * 200


def tick_type(topic: str) -> type[BenchTickV1]:
    return type("BenchTickV1", (BenchTickV1,), {"TOPIC": topic})


async def latency(settings: BaseServiceSettings, rate: float, seconds: float) -> list[float]:
    """Emit events in transactions at ``rate``/s; time from commit to arrival at a consumer."""
    model = tick_type(f"bench.latency.{uuid.uuid4().hex[:8]}")
    await ensure_topics(settings.kafka_bootstrap, [model.TOPIC], 9)
    client = make_client(settings.mongo_url, app_name="bench")
    db = client[settings.mongo_db]
    producer = make_producer(settings)
    await producer.start()
    relay = OutboxRelay(db, producer, Lease(db, "bench.relay", ttl_seconds=10), poll_seconds=1.0,
                        linger_seconds=settings.relay_linger_seconds)
    uow = UnitOfWork(client, db, source="bench", on_events=relay.hand_over)
    consumer = AIOKafkaConsumer(model.TOPIC, bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                auto_offset_reset="latest", fetch_max_wait_ms=5)
    await consumer.start()
    await consumer.seek_to_end()
    await relay.start()
    committed: dict[int, float] = {}
    arrived: dict[int, float] = {}
    total = int(rate * seconds)

    async def consume() -> None:
        async for record in consumer:
            arrived[int(dict(record.headers)["bench_seq"]) if "bench_seq" in dict(record.headers) else _seq(record.value)] = time.perf_counter()
            if len(arrived) >= total:
                return

    consuming = asyncio.create_task(consume())
    start = time.perf_counter()
    for n in range(total):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))

        async def work(tx, n=n):
            await tx.db.business.insert_one({"n": n}, session=tx.session)
            tx.emit(model(stop_id=f"stop-{n % 9}", seq=n))

        await uow.run(work)
        committed[n] = time.perf_counter()
    await asyncio.wait_for(consuming, timeout=60)
    await relay.stop()
    await consumer.stop()
    await producer.stop()
    await client.close()
    return [arrived[n] - committed[n] for n in range(total)]


def _seq(value: bytes) -> int:
    import json

    return json.loads(value)["seq"]


async def committed_records(db, model: type[BenchTickV1], records: int) -> list[dict]:
    """Outbox records as units of work write them (seq numbered per key), inserted in bulk."""
    seqs: Counter[str] = Counter()
    docs = []
    for n in range(records):
        doc = outbox_record(model(stop_id=f"stop-{n % 9}", seq=n), source="bench", correlation_id=None,
                            causation_id=None)
        seqs[doc["key"]] += 1
        doc["seq"] = seqs[doc["key"]]
        docs.append(doc)
    for i in range(0, len(docs), 5000):
        await db[OUTBOX].insert_many(docs[i:i + 5000])
    return docs


async def relay_throughput(settings: BaseServiceSettings, records: int, *, handed: bool) -> tuple[float, float]:
    """The running relay publishing committed records, per second, and the seconds it then took to delete
    them from the outbox. ``handed``: committed by this process and handed over at commit (every unit of
    work's path); otherwise found in the outbox by a relay that starts (recovery after a crash)."""
    model = tick_type(f"bench.relay.{uuid.uuid4().hex[:8]}")
    await ensure_topics(settings.kafka_bootstrap, [model.TOPIC], 9)
    client = make_client(settings.mongo_url, app_name="bench")
    db = client[f"{settings.mongo_db}_{'handed' if handed else 'recovery'}"]
    producer = make_producer(settings)
    await producer.start()
    # No periodic scan during the run: the hand-off path must not be helped by reading the outbox.
    relay = OutboxRelay(db, producer, Lease(db, "bench.relay", ttl_seconds=30),
                        poll_seconds=3600)
    if handed:
        await relay.start()
        await asyncio.sleep(0.5)  # lease taken, positions loaded, empty outbox scanned
        docs = await committed_records(db, model, records)
        start = time.perf_counter()
        relay.hand_over(docs)
    else:
        await committed_records(db, model, records)
        start = time.perf_counter()
        await relay.start()
    while relay.published_total < records:
        await asyncio.sleep(0.001)
    published = time.perf_counter()
    while await db[OUTBOX].estimated_document_count():
        await asyncio.sleep(0.01)
    retired = time.perf_counter()
    await relay.stop()
    await producer.stop()
    await client.close()
    assert relay.published_total == records, (relay.published_total, records)
    return records / (published - start), retired - published


async def raw_throughput(settings: BaseServiceSettings, records: int) -> float:
    """The same records published straight with aiokafka (acks=all), per second."""
    topic = f"bench.raw.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings.kafka_bootstrap, [topic], 9)
    model = tick_type(topic)
    payloads = [outbox_record(model(stop_id=f"stop-{n % 9}", seq=n), source="bench", correlation_id=None,
                              causation_id=None) for n in range(records)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=1)
    await producer.start()
    start = time.perf_counter()
    futures = [await producer.send(topic, value=r["payload"], key=r["key"].encode(),
                                   headers=[(k, v) for k, v in r["headers"]]) for r in payloads]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - start
    await producer.stop()
    return records / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--kafka")
    parser.add_argument("--mongo")
    args = parser.parse_args()
    with infrastructure(args.kafka, args.mongo) as (kafka, mongo):
        settings = BaseServiceSettings(service_name="bench", kafka_bootstrap=kafka, mongo_url=mongo,
                                       mongo_db=f"bench_{uuid.uuid4().hex[:8]}")
        latencies = await latency(settings, args.rate, args.seconds)
        relay_per_s, retire_s = await relay_throughput(settings, args.records, handed=True)
        raw_per_s = await raw_throughput(settings, args.records)
        recovery_per_s, _ = await relay_throughput(settings, args.records, handed=False)
    figures = summary_ms(latencies)
    ratio = relay_per_s / raw_per_s
    print(f"command: {command_line()}")
    print(f"commit→consume latency at {args.rate:.0f} events/s over {len(latencies)} events: "
          f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms")
    print(f"relay {relay_per_s:,.0f} records/s vs raw aiokafka {raw_per_s:,.0f} records/s "
          f"({args.records} records handed over at commit): ratio {ratio:.2f}; "
          f"the published records left the outbox {retire_s:.2f} s later")
    print(f"recovery (a starting relay draining {args.records} records from the outbox): "
          f"{recovery_per_s:,.0f} records/s, ratio {recovery_per_s / raw_per_s:.2f}")
    print_result({"p50_ms": figures["p50_ms"], "p95_ms": figures["p95_ms"], "p99_ms": figures["p99_ms"],
                  "relay_per_s": round(relay_per_s, 1), "raw_per_s": round(raw_per_s, 1), "ratio": round(ratio, 3),
                  "retire_s": round(retire_s, 2), "recovery_per_s": round(recovery_per_s, 1)})


if __name__ == "__main__":
    asyncio.run(main())
