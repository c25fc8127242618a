"""The email sender: claims batches of queued deliveries (one lease per batch),
composes each message (list mail rendered once per batch and template), sends
them over a pool of persistent SMTP connections and records every outcome
(sent, retried later, failed, suppressed) in bulk."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosmtplib
from pymongo.asynchronous.database import AsyncDatabase

from notifications import repository as repo
from notifications.config import Settings
from notifications.domain import email_retry_delay, smtp_failure_is_permanent
from notifications.mailer import Composer, NotReady, Outgoing
from shared.logging import get_logger

log = get_logger(__name__)

_FLUSH_SECONDS = 0.1
_FLUSH_SIZE = 500


@dataclass(frozen=True)
class SmtpResult:
    ok: bool
    code: int | None = None
    reply: str = ""


class SmtpPool:
    """``size`` persistent connections, each sending one message at a time."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(settings.smtp_concurrency):
            self._idle.put_nowait(None)

    async def send(self, message: Outgoing) -> SmtpResult:
        conn = await self._idle.get()
        try:
            if conn is None or not conn.is_connected:
                conn = aiosmtplib.SMTP(hostname=self._settings.smtp_host, port=self._settings.smtp_port,
                                       timeout=self._settings.smtp_timeout_seconds, start_tls=False)
                await conn.connect()
            await conn.sendmail(message.sender, [message.recipient], message.raw)
            return SmtpResult(True)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            conn = await _reset(conn)
            return SmtpResult(False, refused.code, f"{refused.code} {refused.message}")
        except aiosmtplib.SMTPResponseException as exc:
            conn = await _reset(conn)
            return SmtpResult(False, exc.code, f"{exc.code} {exc.message}")
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            conn = await _close(conn)
            return SmtpResult(False, None, f"connection error: {type(exc).__name__}: {exc}"[:300])
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        while not self._idle.empty():
            await _close(self._idle.get_nowait())


async def _reset(conn: aiosmtplib.SMTP | None) -> aiosmtplib.SMTP | None:
    """After a refused transaction, RSET keeps the connection usable; otherwise drop it."""
    if conn is None:
        return None
    try:
        await conn.rset()
        return conn
    except Exception:
        return await _close(conn)


async def _close(conn: aiosmtplib.SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()
    return None


@dataclass(eq=False)
class _Held:
    """A claimed batch in this sender's hands, until it is settled (or released)."""
    claim: repo.Claim
    unsettled: int = 0                     # deliveries whose outcome is not recorded yet
    next_due: datetime | None = None       # earliest next attempt of what stays queued
    prepared: bool = False
    cache: dict[Any, Any] = field(default_factory=dict)


class EmailSender:
    def __init__(self, settings: Settings, db: AsyncDatabase, composer: Composer):
        self.settings = settings
        self.db = db
        self.composer = composer
        self.pool = SmtpPool(settings)
        self._outcomes: list[tuple[dict[str, Any], dict[str, Any], _Held]] = []
        self._bounced: list[tuple[str, str]] = []
        # Claimed batches not settled yet: released on a graceful stop instead of waiting out the lease.
        self._held: dict[str, _Held] = {}
        self._done: list[_Held] = []  # every outcome known; settled after the outcomes are written

    async def run(self) -> None:
        inflight: set[asyncio.Task[None]] = set()
        flusher = asyncio.create_task(self._flush_forever())
        # The next batch is claimed and composed while the current one is being sent.
        ready: asyncio.Queue[tuple[_Held, list[tuple[dict[str, Any], Outgoing]]]] = asyncio.Queue(maxsize=1)
        claimer = asyncio.create_task(self._claim_ahead(ready))
        limit = asyncio.Semaphore(self.settings.smtp_concurrency * 2)
        try:
            while True:
                held, messages = await ready.get()
                for delivery, message in messages:
                    await limit.acquire()
                    task = asyncio.create_task(self._send(held, delivery, message))
                    inflight.add(task)
                    task.add_done_callback(lambda t: (inflight.discard(t), limit.release()))
        finally:
            claimer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await claimer
            # Graceful stop: let in-flight sends finish and record them, so a restart never re-sends.
            if inflight:
                await asyncio.wait(inflight, timeout=self.settings.smtp_timeout_seconds)
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await flusher
            with contextlib.suppress(Exception):
                await self.flush()
                for held in list(self._held.values()):
                    await repo.release(self.db, held.claim)
                    self._held.pop(held.claim.batch_id, None)
            await self.pool.close()

    async def _claim_ahead(self, ready: asyncio.Queue) -> None:
        while True:
            held = await self._claim()
            if held is None:
                await asyncio.sleep(self.settings.sender_poll_seconds)
                continue
            try:
                messages = await self._prepare(held)
            except Exception as exc:  # e.g. the database went away: give the batch back
                log.warning("sender.prepare_failed", batch=held.claim.batch_id, error=repr(exc))
                self._outcomes = [o for o in self._outcomes if o[2] is not held]
                with contextlib.suppress(Exception):
                    await repo.release(self.db, held.claim)
                    self._held.pop(held.claim.batch_id, None)
                await asyncio.sleep(self.settings.sender_poll_seconds)
                continue
            await ready.put((held, messages))

    async def _claim(self) -> _Held | None:
        """Claim a batch and hold it; a stop arriving mid-claim still learns what was claimed, to release it."""
        claiming = asyncio.ensure_future(repo.claim(self.db, "email", lease_seconds=self.settings.delivery_lease_seconds))
        try:
            claim = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                claim = await claiming
                if claim is not None:
                    self._held[claim.batch_id] = _Held(claim)
            raise
        except Exception as exc:
            log.warning("sender.claim_failed", error=repr(exc))
            return None
        if claim is None:
            return None
        held = self._held[claim.batch_id] = _Held(claim)
        return held

    async def _prepare(self, held: _Held) -> list[tuple[dict[str, Any], Outgoing]]:
        """Suppress opted-out recipients of list mail; compose the rest (stops and digests read once per batch)."""
        now = datetime.now(UTC)
        due, later = [], []
        for d in held.claim.deliveries:
            (due if d["next_attempt_at"].replace(tzinfo=UTC) <= now else later).append(d)
        for d in later:
            held.next_due = _earliest(held.next_due, d["next_attempt_at"].replace(tzinfo=UTC))
        listed = sorted({d["recipient"] for d in due if not d["transactional"]})
        suppressed = await repo.suppressed_among(self.db, listed)
        stops = await repo.load_stops(self.db, {d["data"]["stop_id"] for d in due if d["data"].get("stop_id")})
        jobs: dict[str, dict[str, Any] | None] = {}
        ready: list[tuple[dict[str, Any], Outgoing]] = []
        held.unsettled = len(due)
        for d in due:
            if not d["transactional"] and d["recipient"] in suppressed:
                reason = suppressed[d["recipient"]]
                self._outcome(held, d, {"status": "suppressed", "last_error": f"recipient {reason}"})
                continue
            try:
                extra = await self._digest_context(d, jobs)
                ready.append((d, self.composer.outgoing(d, stop=stops.get(d["data"].get("stop_id", "")),
                                                        extra=extra, cache=held.cache)))
            except NotReady as exc:
                self._outcome(held, d, self._retry(d, str(exc), now))
            except Exception as exc:
                log.error("sender.compose_failed", delivery=d["_id"], error=repr(exc))
                self._outcome(held, d, {"status": "failed", "last_error": f"cannot compose: {exc!r}"[:500]})
        held.prepared = True
        self._check_done(held)
        return ready

    async def _digest_context(self, d: dict[str, Any], jobs: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
        """The digest's shared content, one object per job (so the rendered skeleton is shared too)."""
        job_id = d["data"].get("job")
        if not job_id:
            return None
        if job_id not in jobs:
            job = await repo.load_job(self.db, job_id)
            jobs[job_id] = None if job is None else {"replays": list(job["replays"].values()),
                                                     "city": job.get("city") or ""}
        extra = jobs[job_id]
        if extra is None:
            raise NotReady(f"fan-out job {job_id} missing")
        return extra

    async def _send(self, held: _Held, delivery: dict[str, Any], message: Outgoing) -> None:
        result = await self.pool.send(message)
        now = datetime.now(UTC)
        if result.ok:
            outcome = {"status": "sent", "sent_at": now, "last_error": None}
        elif smtp_failure_is_permanent(result.code):
            outcome = {"status": "failed", "failed_at": now, "last_error": result.reply}
            self._bounced.append((delivery["recipient"], result.reply))
        else:
            outcome = self._retry(delivery, result.reply, now)
        self._outcome(held, delivery, outcome)

    def _outcome(self, held: _Held, delivery: dict[str, Any], outcome: dict[str, Any]) -> None:
        self._outcomes.append((delivery, outcome, held))
        if outcome["status"] == "queued":
            held.next_due = _earliest(held.next_due, outcome["next_attempt_at"])
        held.unsettled -= 1
        self._check_done(held)

    def _check_done(self, held: _Held) -> None:
        if held.prepared and held.unsettled == 0 and held not in self._done:
            self._done.append(held)

    def _retry(self, delivery: dict[str, Any], reason: str, now: datetime) -> dict[str, Any]:
        attempt = delivery["attempts"] + 1
        if attempt >= self.settings.email_max_attempts:
            return {"status": "failed", "failed_at": now, "last_error": f"gave up after {attempt} attempts: {reason}"}
        delay = email_retry_delay(attempt, base=self.settings.email_retry_base_seconds,
                                  cap=self.settings.email_retry_max_seconds)
        return {"status": "queued", "next_attempt_at": now + timedelta(seconds=delay), "last_error": reason}

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception as exc:
                log.warning("sender.flush_failed", error=repr(exc))

    async def flush(self) -> None:
        """Record outcomes in bulk; bounced addresses join the suppression list; then give back
        the batches whose every outcome is recorded (gone, or due again at their next retry)."""
        done, self._done = self._done, []
        try:
            while self._outcomes or self._bounced:
                outcomes, self._outcomes = self._outcomes[:_FLUSH_SIZE], self._outcomes[_FLUSH_SIZE:]
                bounced, self._bounced = self._bounced, []
                try:
                    await repo.record_outcomes(self.db, [(d, o) for d, o, _ in outcomes])
                    for email, reply in bounced:
                        await repo.suppress(self.db, email, "bounced", reply)
                except BaseException:
                    # Cancelled too (a graceful stop cancels the periodic flush mid-write): the
                    # outcomes go back, so the final flush records them and no send is repeated.
                    self._outcomes[:0] = outcomes
                    self._bounced[:0] = bounced
                    raise
            while done:
                held = done[0]
                await repo.settle(self.db, held.claim, held.next_due)
                self._held.pop(held.claim.batch_id, None)
                done.pop(0)
        finally:
            self._done[:0] = done


def _earliest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a
