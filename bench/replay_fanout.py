"""Replay fan-out throughput: N confirmed followers of one region, one ReplayPublishedV1,
time until the capture server has accepted every email — against the raw ceiling
(the same number of messages pushed straight to the capture server with aiosmtplib
over the same number of persistent connections).

    .venv/bin/python bench/replay_fanout.py [--followers 10000] [--concurrency 16]

Starts Tansu, SecantusDB and the mail capture on free ports and the notifications
app in-process. The last line printed is JSON:
{"followers", "seconds", "per_s", "raw_per_s", "ratio", "duplicates", "missing"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiosmtplib
import httpx
from aiokafka import AIOKafkaProducer

from notifications.config import Settings
from notifications.main import create_app
from shared.contracts.base import CloudEventHeaders
from shared.contracts.replays import ReplayPublishedV1, ReplaySnapshot
from shared.contracts.venues import StopSnapshot
from shared.localstack import processes as p
from shared.testing.http import running_app
from shared.testing.mail import MailCaptureClient

REGION = "NOR"


def start_stack(workdir: Path) -> tuple[dict[str, int], list[p.ManagedProcess]]:
    ports = {"kafka": p.free_port(), "mongo": p.free_port(), "smtp": p.free_port(), "http": p.free_port()}
    procs = [p.tansu(ports["kafka"], workdir / "kafka.log").start(),
             p.secantus(ports["mongo"], ":memory:", workdir / "mongo.log").start(),
             p.mailcapture(ports["smtp"], ports["http"], workdir / "mail.log").start()]
    p.wait_for_port("127.0.0.1", ports["kafka"], 30, procs[0].proc)
    p.wait_for_mongo(ports["mongo"], 60, procs[1])
    p.wait_for_http(f"http://127.0.0.1:{ports['http']}/api/v1/info", 30, procs[2].proc)
    return ports, procs


async def wait_count(mail: MailCaptureClient, expected: int, timeout: float) -> float:
    started = time.perf_counter()
    while await mail.count() < expected:
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"only {await mail.count()} of {expected} emails after {timeout}s")
        await asyncio.sleep(0.1)
    return time.perf_counter()


async def raw_ceiling(smtp_port: int, raw: bytes, count: int, concurrency: int) -> float:
    """Messages per second straight into the capture server, persistent connections."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, start_tls=False)
        await smtp.connect()
        while not queue.empty():
            i = queue.get_nowait()
            await smtp.sendmail("noreply@intercotour.local", [f"raw{i}@example.org"], raw)
        await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def bench(followers: int, concurrency: int, ports: dict[str, int]) -> dict[str, float | int]:
    settings = Settings(
        mongo_url=p.mongo_url(ports["mongo"]), mongo_db=f"bench_{uuid.uuid4().hex[:8]}",
        kafka_bootstrap=f"127.0.0.1:{ports['kafka']}", kafka_partitions=3, smtp_port=ports["smtp"],
        smtp_concurrency=concurrency, digest_window_seconds=0, timer_poll_seconds=0.2, relay_poll_seconds=0.2,
        sender_poll_seconds=0.1, log_level="WARNING",
    )
    app = create_app(settings)
    mail = MailCaptureClient(f"http://127.0.0.1:{ports['http']}", timeout=30)
    async with running_app(app):
        db = app.state.runtime.db
        now = datetime.now(UTC)
        stop = StopSnapshot(stop_id="bench-stop", season=2022, region=REGION, territory_id="t", city="Rouen",
                            venue={"name": "Halle aux Toiles"}, date=date.today(), starts_at=now - timedelta(days=1),
                            ends_at=now - timedelta(hours=20), theme="Bench", capacity=100, status="held")
        await db.stops.insert_one({"_id": stop.stop_id, **stop.model_dump(mode="json")})
        for start in range(0, followers, 5000):
            await db.followers.insert_many([
                {"_id": f"f{i:07d}", "email": f"viewer{i}@example.org", "regions": [REGION], "topics": ["replays"],
                 "status": "confirmed", "locale": "fr"} for i in range(start, min(start + 5000, followers))])
        await asyncio.sleep(6)  # the consumer group join on the local broker takes ~5 s
        replay = ReplaySnapshot(replay_id="bench-r1", stop_id=stop.stop_id, title="Plénière", provider="url",
                                url="https://video.example/r1", embed_url="https://video.example/e/r1",
                                duration_s=3600, processing="ready", publication="published", region=REGION)
        event = ReplayPublishedV1(replay_id="bench-r1", stop_id=stop.stop_id, replay=replay,
                                  batch_id=uuid.uuid4().hex, published_at=now)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        started = time.perf_counter()
        await producer.send_and_wait(event.TOPIC, value=event.to_json(), key=event.key().encode(),
                                     headers=CloudEventHeaders(type=event.TYPE, source="bench").to_kafka())
        await producer.stop()
        finished = await wait_count(mail, followers, timeout=max(120, followers / 20))
        await asyncio.sleep(2)  # anything sent twice would show up now
        seconds = finished - started

    summaries = await mail.messages(limit=followers * 2)
    counts = Counter(s["To"][0]["Address"] for s in summaries)
    expected = {f"viewer{i}@example.org" for i in range(followers)}
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    missing = len(expected - set(counts))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['http']}") as http:
        raw = (await http.get(f"/api/v1/message/{summaries[0]['ID']}/raw")).content
    await mail.clear()
    raw_per_s = await raw_ceiling(ports["smtp"], raw, followers, concurrency)
    await mail.clear()
    await mail.aclose()
    per_s = followers / seconds
    return {"followers": followers, "seconds": round(seconds, 2), "per_s": round(per_s, 1),
            "raw_per_s": round(raw_per_s, 1), "ratio": round(per_s / raw_per_s, 3),
            "duplicates": duplicates, "missing": missing}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    ports, procs = start_stack(workdir)
    try:
        result = asyncio.run(bench(args.followers, args.concurrency, ports))
    finally:
        for proc in procs:
            proc.stop()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"fan-out: {result['followers']} emails in {result['seconds']} s = {result['per_s']}/s")
    print(f"raw SMTP ceiling: {result['raw_per_s']}/s  ratio: {result['ratio']}")
    print(f"duplicates: {result['duplicates']}  missing: {result['missing']}")
    print(json.dumps(result))
    return 0 if result["duplicates"] == result["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
