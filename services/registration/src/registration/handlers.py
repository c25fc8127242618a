"""Attendee use cases: sign up, view, cancel, transfer, accept or decline an offer.

Each runs in one unit of work (retried whole on write conflicts), so it rebuilds its
state from reads every attempt and has no effect outside MongoDB.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from shared.contracts.registration import (
    OfferAcceptedV1,
    OfferDeclinedV1,
    RegistrationCancelledV1,
    RegistrationConfirmedV1,
    RegistrationTransferredV1,
    RegistrationWaitlistedV1,
)
from shared.errors import Conflict, Gone, NotFound, Unavailable, Unprocessable
from shared.mongo import is_transient
from shared.uow import Tx, UnitOfWork

from registration.domain import CANCELLABLE, HOLDS_PLACE, StopView, new_check_in_code, new_registration_id
from registration.links import MANAGE, OFFER, Links
from registration.places import Places, offer_timer_id
from registration.repository import Repo

Clock = Callable[[], datetime]

# The unit of work already retries a write conflict a dozen times; while another instance
# runs its own rush on the same stop that can run out, so a few more rounds before a 503.
CONTENTION_ROUNDS = 5


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Applicant:
    email: str  # already normalised
    first_name: str
    last_name: str
    organisation: str
    profile: str
    consents: dict[str, bool]
    locale: str = "fr"


class Registrations:
    def __init__(self, uow: UnitOfWork, places: Places, links: Links, clock: Clock = utcnow):
        self.uow = uow
        self.places = places
        self.links = links
        self.clock = clock
        # Sign-ups for one stop queue here instead of colliding in the database: the
        # conditional update stays the guarantee (across instances too), this only
        # spares the write-conflict retries that would otherwise dominate a rush.
        self._stop_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- sign-up ---------------------------------------------------------------------------
    async def sign_up(self, stop_id: str, applicant: Applicant,
                      idempotency_key: str | None = None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body). The write is committed before this returns."""
        fingerprint = _fingerprint(stop_id, applicant)
        key = f"signup:{idempotency_key}" if idempotency_key else None

        async def work(tx: Tx) -> tuple[int, dict[str, Any]]:
            repo = Repo.of(tx)
            if key and (saved := await repo.idempotent_answer(key)):
                return _replay(saved, fingerprint)
            reg, stop_doc, position = await self._enrol(tx, repo, stop_id, applicant)
            body = self.answer(reg, stop_doc, position)
            if key:
                await repo.save_answer(key, fingerprint, 201, body, self.clock())
            return 201, body

        async with self._gate(stop_id):
            return await self._run(work, duplicate=lambda: self._duplicate_or_replay(key, fingerprint))

    async def _enrol(self, tx: Tx, repo: Repo, stop_id: str, applicant: Applicant,
                     **links: str) -> tuple[dict[str, Any], dict[str, Any], int | None]:
        """Confirm if a place is free, else join the waitlist; emit the event.

        The conditional counter update is the first and only read of the stop on the way
        in (the hot path); the stop is read for a reason only when both updates refuse.
        The unique index refuses a second active registration (DuplicateKeyError → 409).
        Returns (registration, stop after, waitlist position).
        """
        now = self.clock()
        reg: dict[str, Any] = {
            "_id": new_registration_id(), "stop_id": stop_id, **asdict(applicant),
            "check_in_code": new_check_in_code(), "created_at": now, "updated_at": now, **links,
        }
        position = None
        if after := await repo.take_place(stop_id, now):
            reg["status"] = "confirmed"
            await repo.insert(reg)
            tx.emit(self.places.event(RegistrationConfirmedV1, reg, after, check_in_code=reg["check_in_code"],
                                      via="transfer" if links else "signup"))
        elif after := await repo.join_waitlist(stop_id, now):
            # Positions follow waitlist_seq, and nobody joined after us in this transaction: we are last.
            position = after["waitlisted"]
            reg.update(status="waitlisted", waitlist_seq=after["waitlist_seq"])
            await repo.insert(reg)
            tx.emit(self.places.event(RegistrationWaitlistedV1, reg, after, position=position))
        else:
            raise await self._signup_refusal(repo, stop_id, now)
        return reg, await self.places.settle(tx, repo, after, now), position

    @staticmethod
    async def _signup_refusal(repo: Repo, stop_id: str, now: datetime) -> Exception:
        doc = await repo.stop(stop_id)
        if doc is None:
            return NotFound(f"unknown stop {stop_id!r}", code="stop_not_found")
        reason = StopView.from_doc(doc).signup_refusal(now) or "registration is not open for this stop"
        return Unprocessable(reason, code="registration_not_open", stop_status=doc["status"])

    # -- self-service ----------------------------------------------------------------------
    async def view(self, registration_id: str, token: str | None) -> dict[str, Any]:
        self.links.check(token, registration_id, {MANAGE, OFFER})
        repo = Repo(self.uow.db)
        reg = await self._registration(repo, registration_id)
        stop_doc = await repo.stop(reg["stop_id"])
        return self.details(reg, stop_doc, await self._position(repo, reg))

    async def cancel(self, registration_id: str, token: str | None) -> dict[str, Any]:
        self.links.check(token, registration_id, {MANAGE})

        async def work(tx: Tx) -> dict[str, Any]:
            repo = Repo.of(tx)
            before = await self._registration(repo, registration_id)
            if before["status"] == "cancelled":
                return await self._details_of(repo, before)  # cancelling twice is harmless
            if before["status"] not in CANCELLABLE:
                raise Conflict(f"a registration that is {before['status']} cannot be cancelled",
                               code="not_cancellable", current_status=before["status"])
            now = self.clock()
            reg = await repo.transition(registration_id, before["status"], {
                "status": "cancelled", "cancelled_by": "attendee", "cancelled_at": now, "updated_at": now})
            stop_doc = await self.places.vacate(tx, repo, before)
            tx.emit(self.places.event(RegistrationCancelledV1, reg, stop_doc, by="attendee"))
            stop_doc = await self.places.settle(tx, repo, stop_doc, now)
            return self.details(reg, stop_doc, None)

        return await self._run(work)

    async def accept_offer(self, registration_id: str, token: str | None) -> dict[str, Any]:
        self.links.check(token, registration_id, {OFFER, MANAGE})

        async def work(tx: Tx) -> dict[str, Any]:
            repo = Repo.of(tx)
            before = await self._registration(repo, registration_id)
            if before["status"] in HOLDS_PLACE:
                return await self._details_of(repo, before)  # a second click on "accept" changes nothing
            now = self._require_live_offer(before)
            reg = await repo.transition(registration_id, "offered", {"status": "confirmed", "confirmed_at": now,
                                                                     "updated_at": now}, unset=("offer_expires_at",))
            stop_doc = await repo.move_counters(reg["stop_id"], offered=-1, confirmed=1)
            await tx.cancel_timer(offer_timer_id(registration_id))
            tx.emit(self.places.event(OfferAcceptedV1, reg, stop_doc))
            tx.emit(self.places.event(RegistrationConfirmedV1, reg, stop_doc, check_in_code=reg["check_in_code"],
                                      via="offer"))
            if reg.get("transferred_from"):
                await self._release_source(tx, repo, reg, now)
            return self.details(reg, stop_doc, None)

        return await self._run(work)

    async def decline_offer(self, registration_id: str, token: str | None) -> dict[str, Any]:
        self.links.check(token, registration_id, {OFFER, MANAGE})

        async def work(tx: Tx) -> dict[str, Any]:
            repo = Repo.of(tx)
            before = await self._registration(repo, registration_id)
            if before["status"] == "cancelled" and before.get("cancel_reason") == "offer_declined":
                return await self._details_of(repo, before)
            now = self._require_live_offer(before)
            reg = await repo.transition(registration_id, "offered", {
                "status": "cancelled", "cancelled_by": "attendee", "cancel_reason": "offer_declined",
                "cancelled_at": now, "updated_at": now})
            stop_doc = await self.places.vacate(tx, repo, before)
            tx.emit(self.places.event(OfferDeclinedV1, reg, stop_doc))
            stop_doc = await self.places.settle(tx, repo, stop_doc, now)
            return self.details(reg, stop_doc, None)

        return await self._run(work)

    def _require_live_offer(self, reg: dict[str, Any]) -> datetime:
        if reg["status"] != "offered":
            raise Conflict(f"there is no open offer on this registration (status: {reg['status']})",
                           code="no_open_offer", current_status=reg["status"])
        now = self.clock()
        if reg["offer_expires_at"] <= now:
            raise Gone("this offer has expired", code="offer_expired")
        return now

    async def transfer(self, registration_id: str, token: str | None, to_stop_id: str) -> dict[str, Any]:
        """Move to another stop. The current place is kept until the new one is confirmed:
        confirmed at once → the old registration becomes ``transferred`` now; waitlisted →
        both stay, and accepting the target's offer later releases the old place."""
        self.links.check(token, registration_id, {MANAGE})

        async def work(tx: Tx) -> dict[str, Any]:
            repo = Repo.of(tx)
            source = await self._registration(repo, registration_id)
            if source["status"] not in CANCELLABLE:
                raise Conflict(f"a registration that is {source['status']} cannot be transferred",
                               code="not_transferable", current_status=source["status"])
            if source["stop_id"] == to_stop_id:
                raise Unprocessable("this registration is already for that stop", fields={"to_stop_id": "same stop"})
            if source.get("transfer_to"):
                raise Conflict("a transfer is already pending for this registration", code="transfer_pending",
                               pending_registration_id=source["transfer_to"])
            applicant = Applicant(**{f: source[f] for f in Applicant.__dataclass_fields__})
            target, target_doc, position = await self._enrol(tx, repo, to_stop_id, applicant,
                                                             transferred_from=registration_id)
            if target["status"] == "confirmed":
                await self._release_source(tx, repo, target, self.clock())
            else:
                await repo.set_fields(registration_id, {"transfer_to": target["_id"]})
            return {**self.answer(target, target_doc, position),
                    "from_registration_id": registration_id}

        async with self._gate(to_stop_id):
            return await self._run(work)

    async def _release_source(self, tx: Tx, repo: Repo, target: dict[str, Any], now: datetime) -> None:
        """The target place is confirmed: the source registration gives its place back."""
        before = await repo.registration(target["transferred_from"])
        if before is None or before["status"] not in CANCELLABLE:
            return
        source = await repo.transition(before["_id"], before["status"], {
            "status": "transferred", "transfer_to": target["_id"], "updated_at": now})
        stop_doc = await self.places.vacate(tx, repo, before, unlink=False)
        tx.emit(self.places.event(RegistrationTransferredV1, source, stop_doc, to_stop_id=target["stop_id"],
                                  to_registration_id=target["_id"], to_status="confirmed"))
        await self.places.settle(tx, repo, stop_doc, now)

    async def qr_code(self, registration_id: str, token: str | None) -> str:
        self.links.check(token, registration_id, {MANAGE})
        reg = await self._registration(Repo(self.uow.db), registration_id)
        if reg["status"] not in HOLDS_PLACE:
            raise Conflict("only a confirmed registration has a check-in code", code="not_confirmed",
                           current_status=reg["status"])
        import segno  # imported lazily: only this endpoint draws

        return segno.make(reg["check_in_code"], error="m").svg_inline(scale=6, border=2)

    # -- answers ---------------------------------------------------------------------------
    def answer(self, reg: dict[str, Any], stop_doc: dict[str, Any], position: int | None) -> dict[str, Any]:
        """The sign-up answer (201)."""
        body = {"id": reg["_id"], "stop_id": reg["stop_id"], "status": reg["status"], "waitlist_position": position,
                "manage_url": self.links.manage_url(reg["_id"], stop_doc["ends_at"])}
        if reg["status"] in HOLDS_PLACE:
            body["check_in_code"] = reg["check_in_code"]
        return body

    def details(self, reg: dict[str, Any], stop_doc: dict[str, Any] | None, position: int | None) -> dict[str, Any]:
        """The self-service view of one registration."""
        body = {k: reg.get(k) for k in ("stop_id", "status", "email", "first_name", "last_name", "organisation",
                                        "profile", "consents", "locale", "cancelled_by", "transfer_to",
                                        "transferred_from", "offer_expires_at", "checked_in_at")}
        body.update(id=reg["_id"], waitlist_position=position, date_changed=reg.get("date_changed", False),
                    check_in_code=reg["check_in_code"] if reg["status"] in HOLDS_PLACE else None)
        if stop_doc:
            body["stop"] = {k: stop_doc.get(k) for k in ("city", "region", "status", "date", "starts_at", "ends_at")}
        return body

    async def _details_of(self, repo: Repo, reg: dict[str, Any]) -> dict[str, Any]:
        return self.details(reg, await repo.stop(reg["stop_id"]), await self._position(repo, reg))

    @staticmethod
    async def _position(repo: Repo, reg: dict[str, Any]) -> int | None:
        if reg["status"] != "waitlisted":
            return None
        return await repo.waitlist_position(reg["stop_id"], reg["waitlist_seq"])

    @staticmethod
    async def _registration(repo: Repo, registration_id: str) -> dict[str, Any]:
        reg = await repo.registration(registration_id)
        if reg is None:
            raise NotFound("unknown registration", code="registration_not_found")
        return reg

    # -- plumbing --------------------------------------------------------------------------
    def _gate(self, stop_id: str) -> asyncio.Lock:
        lock = self._stop_locks.get(stop_id)
        if lock is None:
            lock = self._stop_locks[stop_id] = asyncio.Lock()
        return lock

    async def _run(self, work: Callable[[Tx], Any], duplicate: Callable[[], Any] | None = None) -> Any:
        for round_ in range(1, CONTENTION_ROUNDS + 1):
            try:
                return await self.uow.run(work)
            except DuplicateKeyError:
                # Another request committed the same person (or the same idempotency key) first.
                if duplicate is None:
                    raise _duplicate() from None
                return await duplicate()
            except PyMongoError as exc:
                if not is_transient(exc):
                    raise
                if round_ == CONTENTION_ROUNDS:  # still colliding (another instance's rush): come back later
                    raise Unavailable("too many simultaneous changes on this stop; retry shortly",
                                      retry_after=1) from exc
                await asyncio.sleep(random.uniform(0.01, 0.05 * round_))

    async def _duplicate_or_replay(self, key: str | None, fingerprint: str) -> tuple[int, dict[str, Any]]:
        saved = await Repo(self.uow.db).idempotent_answer(key) if key else None
        if saved:
            return _replay(saved, fingerprint)
        raise _duplicate()


def _fingerprint(stop_id: str, applicant: Applicant) -> str:
    return hashlib.sha256(json.dumps([stop_id, asdict(applicant)], sort_keys=True).encode()).hexdigest()


def _replay(saved: dict[str, Any], fingerprint: str) -> tuple[int, dict[str, Any]]:
    if saved["fingerprint"] != fingerprint:
        raise Unprocessable("this Idempotency-Key was already used for a different request",
                            code="idempotency_key_reused", fields={"Idempotency-Key": "reused with another body"})
    return saved["status"], saved["body"]


def _duplicate() -> Conflict:
    return Conflict("this email already has a registration for this stop", code="already_registered",
                    fields={"email": "already registered for this stop"})
