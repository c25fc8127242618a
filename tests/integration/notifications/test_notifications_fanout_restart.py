"""Fan-out and sending survive restarts on the real database: a fan-out that
crashes mid-way resumes without duplicates, a sender stopped mid-way is replaced
without re-sending, and a temporary SMTP failure is retried until sent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from notifications import repository as repo
from notifications.config import Settings
from notifications.fanout import FanOut
from notifications.handlers import EventHandlers
from notifications.mailer import Composer, Links
from notifications.sender import EmailSender, SmtpResult
from shared.auth import LinkSigner
from shared.localstack.mailcapture import MailCapture
from shared.mongo import ensure_indexes, make_client
from shared.testing.eventually import eventually
from shared.testing.infra import unique_db
from shared.testing.mail import MailCaptureClient

pytestmark = pytest.mark.integration

FOLLOWERS = 1200


@pytest.fixture
async def setup(infra):
    capture = MailCapture(host="127.0.0.1", smtp_port=0, http_port=0)
    await capture.start()
    settings = Settings(mongo_url=infra.mongo_url, mongo_db=unique_db("notif_fanout"), smtp_port=capture.smtp_port,
                        fanout_chunk=500, sender_poll_seconds=0.05, email_retry_base_seconds=0.05,
                        email_retry_max_seconds=0.1, delivery_lease_seconds=60)
    client = make_client(settings.mongo_url, app_name="test")
    db = client[settings.mongo_db]
    await ensure_indexes(db, repo.INDEXES)
    links = Links(LinkSigner("s", namespace="notifications"), portal="http://portal.test", public="http://n.test",
                  ttl_confirm=60, ttl_prefs=60)
    composer = Composer(links, mail_from="IntercoTOUR <noreply@intercotour.local>", unsubscribe_mailto="u@x.test")
    async with MailCaptureClient(capture.http_url) as mail:
        yield settings, db, composer, mail
    await client.close()
    await capture.stop()


async def test_fanout_and_sending_resume_after_crashes_without_duplicates(setup, monkeypatch):
    settings, db, composer, mail = setup
    await db.followers.insert_many([
        {"_id": f"f{i:06d}", "email": f"viewer{i}@example.org", "regions": ["NOR"], "topics": ["replays"],
         "status": "confirmed" if i % 10 else "pending", "locale": "fr"} for i in range(FOLLOWERS)])
    await db.attendees.insert_many([
        {"_id": "reg-a", "stop_id": "s1", "email": "viewer1@example.org", "first_name": "A", "locale": "fr", "status": "confirmed"},
        {"_id": "reg-b", "stop_id": "s1", "email": "gone@example.org", "first_name": "B", "locale": "en", "status": "no_show"},
    ])
    job = {"_id": "replay:b1:1", "batch_id": "b1", "kind": "replay_digest", "state": "running", "stop_id": "s1",
           "region": "NOR", "city": "Rouen", "topic": "replays", "phase": "attendees", "cursor": None,
           "replays": {"r1": {"replay_id": "r1", "title": "Plénière", "url": "https://v.example/1", "duration_s": 60}},
           "created_at": datetime.now(UTC)}
    await repo.save_job(db, job, None)

    fanout = FanOut(settings, EventHandlers(settings))
    real_insert, calls = repo.insert_batch, {"n": 0}

    async def crash_on_third_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the attendees' batch and the first followers' batch are written
            raise RuntimeError("process killed mid fan-out")
        return await real_insert(*args, **kwargs)

    monkeypatch.setattr(repo, "insert_batch", crash_on_third_batch)
    with pytest.raises(RuntimeError):
        await fanout.run_job(db, job)
    monkeypatch.setattr(repo, "insert_batch", real_insert)
    await fanout.run_job(db, await repo.load_job(db, "replay:b1:1"))  # a restarted process resumes the job
    expected = FOLLOWERS - FOLLOWERS // 10 + 1  # confirmed followers, plus the attendee who does not follow
    assert await db.deliveries.count_documents({}) == expected
    assert (await repo.load_job(db, "replay:b1:1"))["state"] == "done"

    first = asyncio.create_task(EmailSender(settings, db, composer).run())
    await mail.wait_for(lambda seen: len(seen) >= 300, timeout=30)
    first.cancel()  # graceful stop in the middle of the fan-out
    await asyncio.gather(first, return_exceptions=True)
    second = asyncio.create_task(EmailSender(settings, db, composer).run())
    try:
        await eventually(lambda: mail.count(), timeout=1)

        async def all_sent():
            stats = {s: await db.deliveries.count_documents({"status": s}) for s in ("queued", "sent", "failed", "suppressed")}
            assert stats["sent"] == expected, (stats, await db.deliveries.find_one({"status": {"$ne": "sent"}}))
            return True

        await eventually(all_sent, timeout=30)
    finally:
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
    seen = await mail.messages(limit=5000)
    recipients = [m["To"][0]["Address"] for m in seen]
    assert len(recipients) == len(set(recipients)) == expected
    missed = [m for m in seen if m["To"][0]["Address"] == "gone@example.org"]
    assert missed[0]["Subject"] == "Missed it? New replay — IntercoTOUR Rouen"


class FlakyPool:
    """Answers 451 to the first attempt of each recipient, then accepts."""

    def __init__(self) -> None:
        self.tries: dict[str, int] = {}

    async def send(self, message) -> SmtpResult:
        to = message.recipient
        self.tries[to] = self.tries.get(to, 0) + 1
        return SmtpResult(True) if self.tries[to] > 1 else SmtpResult(False, 451, "451 4.7.1 try again later")

    async def close(self) -> None:
        pass


async def test_temporary_smtp_failure_is_retried_then_sent(setup):
    settings, db, composer, _ = setup
    await db.stops.insert_one({"_id": "s9", "stop_id": "s9", "season": 2022, "region": "NOR", "territory_id": "t",
                               "city": "Rouen", "venue": {"name": "Halle"}, "date": "2030-01-01",
                               "starts_at": "2030-01-01T09:00:00+00:00", "ends_at": "2030-01-01T17:00:00+00:00",
                               "theme": "T", "capacity": 10, "status": "registration_open"})
    await repo.enqueue(db, [repo.new_delivery("k-flaky", channel="email", kind="registration_waitlisted",
                                              recipient="slow@example.org",
                                              data={"stop_id": "s9", "first_name": "S", "manage_url": "", "position": 1})], None)
    sender = EmailSender(settings, db, composer)
    sender.pool = FlakyPool()
    task = asyncio.create_task(sender.run())
    try:
        async def sent():
            doc = await db.deliveries.find_one({"_id": "k-flaky"})
            return doc if doc["status"] == "sent" else None

        doc = await eventually(sent, timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert doc["attempts"] == 2 and sender.pool.tries == {"slow@example.org": 2}


async def test_batch_of_a_crashed_sender_is_taken_over_after_its_lease_sending_only_what_is_unsent(setup):
    settings, db, composer, mail = setup
    await db.stops.insert_one({"_id": "s8", "stop_id": "s8", "season": 2022, "region": "NOR", "territory_id": "t",
                               "city": "Rouen", "venue": {"name": "Halle"}, "date": "2030-01-01",
                               "starts_at": "2030-01-01T09:00:00+00:00", "ends_at": "2030-01-01T17:00:00+00:00",
                               "theme": "T", "capacity": 10, "status": "registration_open"})
    deliveries = [repo.new_delivery(f"k-crash-{i}", channel="email", kind="registration_waitlisted",
                                    recipient=f"crash{i}@example.org",
                                    data={"stop_id": "s8", "first_name": "C", "manage_url": "", "position": i})
                  for i in range(3)]
    assert await repo.insert_batch(db, deliveries) == 3
    assert await repo.insert_batch(db, deliveries) == 0  # written again (redelivery): nothing new, no new batch
    assert await db.delivery_batches.count_documents({}) == 1

    # A sender claims the whole batch with one lease, sends and records the first delivery, then dies.
    dead = await repo.claim(db, "email", lease_seconds=1.5)
    assert dead is not None and len(dead.deliveries) == 3
    await repo.record_outcomes(db, [(dead.deliveries[0], {"status": "sent", "sent_at": datetime.now(UTC)})])
    assert await repo.claim(db, "email", lease_seconds=60) is None  # held: nobody else may take it yet

    sender = asyncio.create_task(EmailSender(settings, db, composer).run())
    try:
        async def all_sent():
            return await db.deliveries.count_documents({"_id": {"$regex": "^k-crash"}, "status": "sent"}) == 3
        await eventually(all_sent, timeout=15)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    recipients = sorted(m["To"][0]["Address"] for m in await mail.messages(limit=50))
    assert recipients == ["crash1@example.org", "crash2@example.org"]  # the recorded one is not sent again
    assert await db.delivery_batches.count_documents({}) == 0  # settled: nothing left to send
    first = await db.deliveries.find_one({"_id": "k-crash-0"})
    assert first["attempts"] == 1
