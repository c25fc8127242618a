"""Mail to many: replay digests (followers of the region + the stop's attendees)
and new-stop announcements (followers), written as delivery records in pages.

A job document tracks where the fan-out is (phase and last follower id), so a
restart resumes it; re-writing a page is harmless because each delivery's
notification key is unique. Followers are streamed from one indexed query;
nothing holds the whole list in memory, and no batch needs a transaction."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from notifications import repository as repo
from notifications.config import Settings
from notifications.domain import REPLAY_AUDIENCE, notification_key, replay_variant
from notifications.handlers import EventHandlers
from shared.contracts.base import CloudEventHeaders
from shared.contracts.replays import ReplayPublishedV1
from shared.contracts.venues import StopRegistrationOpenedV1
from shared.logging import get_logger
from shared.messaging.lease import Lease
from shared.uow import Tx

log = get_logger(__name__)

DIGEST_TIMER = "replay_digest"


class FanOut:
    def __init__(self, settings: Settings, handlers: EventHandlers):
        self.settings = settings
        self.handlers = handlers

    # ------------------------------------------------------------ in the consumer's transaction

    async def on_replay_published(self, event: ReplayPublishedV1, tx: Tx, ce: CloudEventHeaders) -> None:
        """Collect the replay into its batch's digest; the first one of a batch starts the window."""
        replay = event.replay
        stop = await repo.load_stop(tx.db, event.stop_id, tx.session)
        await self.handlers.queue_webhooks(tx, ce, replay.region or (stop.region if stop else None),
                                           {"replay": replay.model_dump(mode="json")})
        entry = {"replay_id": replay.replay_id, "title": replay.title, "url": replay.url,
                 "duration_s": replay.duration_s}
        job = await repo.open_replay_batch(tx.db, tx.session, event.batch_id)
        if job is not None:
            job["replays"][replay.replay_id] = entry
            await repo.save_job(tx.db, job, tx.session)
            return
        # A replay of a batch whose digest already went out starts a new digest round.
        round_no = await repo.count_jobs(tx.db, tx.session, event.batch_id) + 1
        job = {
            "_id": f"replay:{event.batch_id}:{round_no}", "batch_id": event.batch_id, "kind": "replay_digest",
            "state": "waiting", "stop_id": event.stop_id, "region": replay.region or (stop.region if stop else None),
            "city": replay.city or (stop.city if stop else ""), "topic": "replays",
            "replays": {replay.replay_id: entry}, "phase": "attendees", "cursor": None,
            "created_at": datetime.now(UTC),
        }
        await repo.save_job(tx.db, job, tx.session)
        due = datetime.now(UTC) + timedelta(seconds=self.settings.digest_window_seconds)
        await tx.schedule(f"digest:{job['_id']}", DIGEST_TIMER, due, {"job_id": job["_id"]})

    async def on_digest_due(self, tx: Tx, payload: dict[str, Any]) -> None:
        await repo.update_job(tx.db, payload["job_id"], {"state": "running"}, tx.session)

    async def on_registration_opened(self, event: StopRegistrationOpenedV1, tx: Tx, ce: CloudEventHeaders) -> None:
        await self.handlers.on_stop(event, tx, ce)
        await repo.save_job(tx.db, {
            "_id": f"stop:{ce.id}", "kind": "new_stop", "state": "running", "stop_id": event.stop_id,
            "region": event.stop.region, "topic": "stops", "phase": "followers", "cursor": None,
            "created_at": datetime.now(UTC),
        }, tx.session)

    # ------------------------------------------------------------ the fan-out loop

    async def run(self, db: AsyncDatabase, lease: Lease) -> None:
        """One fan-out writer per service (a lease); other instances stand by."""
        try:
            while True:
                try:
                    if await lease.acquire():
                        async for job in repo.running_jobs(db):
                            await self.run_job(db, job, lease)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("fanout.retry", error=repr(exc))
                await asyncio.sleep(self.settings.sender_poll_seconds)
        finally:
            with contextlib.suppress(Exception):
                await lease.release()

    async def run_job(self, db: AsyncDatabase, job: dict[str, Any], lease: Lease | None = None) -> None:
        """Write the job's deliveries in batches of ``claim_batch`` (one sender lease each).

        Each batch is handed to the senders as soon as it is written, so sending
        starts while the fan-out goes on. The cursor (last follower id written)
        is saved every ``fanout_chunk`` followers; a restarted job skips what is
        before it, and anything written twice is absorbed by the unique keys."""
        size = self.settings.claim_batch
        if job["phase"] == "attendees":
            attendees = await repo.attendees_of(db, job["stop_id"], REPLAY_AUDIENCE)
            # Attendees first: someone both attending and following gets the attendee variant, once.
            deliveries = [self._delivery(job, a["email"], a["locale"], variant=replay_variant(a["status"]),
                                         first_name=a["first_name"]) for a in attendees]
            for i in range(0, len(deliveries), size):
                await repo.insert_batch(db, deliveries[i:i + size])
            job["phase"] = "followers"
            await repo.update_job(db, job["_id"], {"phase": "followers", "cursor": None})
        if job["region"]:
            cursor, previous, since_save = job["cursor"], None, 0
            chunk: list[dict[str, Any]] = []
            async for follower in repo.region_followers(db, job["region"], self.settings.fanout_chunk):
                fid = follower["_id"]
                if previous is not None and fid <= previous:
                    raise RuntimeError("followers not streamed in _id order; the cursor cannot be trusted")
                previous = fid
                if (cursor is not None and fid <= cursor) or job["topic"] not in (follower.get("topics") or ()):
                    continue
                chunk.append(self._delivery(job, follower["email"], follower.get("locale", "fr"),
                                            variant="follower", first_name=""))
                if len(chunk) >= size:
                    await repo.insert_batch(db, chunk)
                    chunk, since_save = [], since_save + len(chunk)
                    if since_save >= self.settings.fanout_chunk:
                        since_save = 0
                        job["cursor"] = fid
                        await repo.update_job(db, job["_id"], {"cursor": fid})
                        if lease is not None and not await lease.acquire():
                            return  # another instance took over; it resumes from the cursor
            await repo.insert_batch(db, chunk)
        await repo.update_job(db, job["_id"], {"state": "done", "finished_at": datetime.now(UTC)})
        log.info("fanout.done", job_id=job["_id"])

    @staticmethod
    def _delivery(job: dict[str, Any], email: str, locale: str, **data: Any) -> dict[str, Any]:
        kind = job["kind"]
        payload = {"job": job["_id"], **data} if kind == "replay_digest" else {"stop_id": job["stop_id"]}
        return repo.new_delivery(notification_key(job["_id"], email, kind), channel="email", kind=kind,
                                 recipient=email, locale=locale, data=payload)
