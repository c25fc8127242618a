"""The email sender: claims queued deliveries in batches (a lease per delivery),
composes each message, sends it over a pool of persistent SMTP connections and
records every outcome (sent, retried later, failed, suppressed)."""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import aiosmtplib
from pymongo.asynchronous.database import AsyncDatabase

from notifications import repository as repo
from notifications.config import Settings
from notifications.domain import email_retry_delay, smtp_failure_is_permanent
from notifications.mailer import Composer, NotReady
from shared.logging import get_logger

log = get_logger(__name__)

# Folding at 78 columns would turn the long List-Unsubscribe URL into RFC 2047
# encoded-words that mail clients cannot use; RFC 5322 allows 998.
_WIRE = email.policy.SMTP.clone(max_line_length=998)
_FLUSH_SECONDS = 0.1
_FLUSH_SIZE = 200


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

    async def send(self, message: EmailMessage) -> SmtpResult:
        conn = await self._idle.get()
        try:
            if conn is None or not conn.is_connected:
                conn = aiosmtplib.SMTP(hostname=self._settings.smtp_host, port=self._settings.smtp_port,
                                       timeout=self._settings.smtp_timeout_seconds, start_tls=False)
                await conn.connect()
            await conn.sendmail(parseaddr(message["From"])[1], [message["To"]], message.as_bytes(policy=_WIRE))
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


class EmailSender:
    def __init__(self, settings: Settings, db: AsyncDatabase, composer: Composer):
        self.settings = settings
        self.db = db
        self.composer = composer
        self.pool = SmtpPool(settings)
        self._outcomes: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._bounced: list[tuple[str, str]] = []
        # Claimed and not yet attempted: released on a graceful stop instead of waiting out the lease.
        self._held: dict[str, dict[str, Any]] = {}

    async def run(self) -> None:
        inflight: set[asyncio.Task[None]] = set()
        flusher = asyncio.create_task(self._flush_forever())
        limit = asyncio.Semaphore(self.settings.smtp_concurrency * 2)
        try:
            while True:
                batch = await self._claim()
                if not batch:
                    await asyncio.sleep(self.settings.sender_poll_seconds)
                    continue
                for delivery, message in await self._prepare(batch):
                    await limit.acquire()
                    task = asyncio.create_task(self._send(delivery, message))
                    inflight.add(task)
                    task.add_done_callback(lambda t: (inflight.discard(t), limit.release()))
        finally:
            # Graceful stop: let in-flight sends finish and record them, so a restart never re-sends.
            if inflight:
                await asyncio.wait(inflight, timeout=self.settings.smtp_timeout_seconds)
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await flusher
            with contextlib.suppress(Exception):
                await self.flush()
                await repo.release(self.db, list(self._held.values()))
            await self.pool.close()

    async def _claim(self) -> list[dict[str, Any]]:
        """Claim a batch and hold it; a stop arriving mid-claim still learns what was claimed, to release it."""
        claiming = asyncio.ensure_future(repo.claim(self.db, "email", lease_seconds=self.settings.delivery_lease_seconds))
        try:
            batch = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                self._held.update((d["_id"], d) for d in await claiming)
            raise
        except Exception as exc:
            log.warning("sender.claim_failed", error=repr(exc))
            return []
        self._held.update((d["_id"], d) for d in batch)
        return batch

    async def _prepare(self, batch: list[dict[str, Any]]) -> list[tuple[dict[str, Any], EmailMessage]]:
        """Suppress opted-out recipients of list mail; compose the rest (stops and digests read once per batch)."""
        listed = sorted({d["recipient"] for d in batch if not d["transactional"]})
        suppressed = await repo.suppressed_among(self.db, listed)
        stops = await repo.load_stops(self.db, {d["data"]["stop_id"] for d in batch if d["data"].get("stop_id")})
        jobs: dict[str, dict[str, Any] | None] = {}
        ready: list[tuple[dict[str, Any], EmailMessage]] = []
        now = datetime.now(UTC)
        for d in batch:
            if not d["transactional"] and d["recipient"] in suppressed:
                reason = suppressed[d["recipient"]]
                self._outcomes.append((d, {"status": "suppressed", "last_error": f"recipient {reason}"}))
                continue
            try:
                extra = await self._digest_context(d, jobs)
                ready.append((d, self.composer.compose(d, stop=stops.get(d["data"].get("stop_id", "")), extra=extra)))
            except NotReady as exc:
                self._outcomes.append((d, self._retry(d, str(exc), now)))
            except Exception as exc:
                log.error("sender.compose_failed", delivery=d["_id"], error=repr(exc))
                self._outcomes.append((d, {"status": "failed", "last_error": f"cannot compose: {exc!r}"[:500]}))
        return ready

    async def _digest_context(self, d: dict[str, Any], jobs: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
        job_id = d["data"].get("job")
        if not job_id:
            return None
        if job_id not in jobs:
            jobs[job_id] = await repo.load_job(self.db, job_id)
        job = jobs[job_id]
        if job is None:
            raise NotReady(f"fan-out job {job_id} missing")
        return {"replays": list(job["replays"].values()), "city": job.get("city") or ""}

    async def _send(self, delivery: dict[str, Any], message: EmailMessage) -> None:
        result = await self.pool.send(message)
        now = datetime.now(UTC)
        if result.ok:
            outcome = {"status": "sent", "sent_at": now, "last_error": None}
        elif smtp_failure_is_permanent(result.code):
            outcome = {"status": "failed", "failed_at": now, "last_error": result.reply}
            self._bounced.append((delivery["recipient"], result.reply))
        else:
            outcome = self._retry(delivery, result.reply, now)
        self._outcomes.append((delivery, outcome))

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
        """Record outcomes in bulk; bounced addresses join the suppression list."""
        while self._outcomes or self._bounced:
            outcomes, self._outcomes = self._outcomes[:_FLUSH_SIZE], self._outcomes[_FLUSH_SIZE:]
            bounced, self._bounced = self._bounced, []
            try:
                await repo.record_outcomes(self.db, outcomes)
                for email, reply in bounced:
                    await repo.suppress(self.db, email, "bounced", reply)
            except Exception:
                self._outcomes[:0] = outcomes
                self._bounced[:0] = bounced
                raise
            for delivery, _ in outcomes:
                self._held.pop(delivery["_id"], None)
