"""RGPD in notifications: the erasure desk of the whole circuit, and this service's own duties.

Why here: notifications already reaches every person by email (signed links), so it hosts
the erasure request endpoints and keeps each request's status per service.

- ``POST /api/v1/privacy/erasure {email}`` (staff) publishes ``ErasureRequestedV1`` on
  ``privacy.requests.v1``; ``GET /api/v1/privacy/erasure/{request_id}`` (staff) shows which
  services confirmed (``ErasureCompletedV1`` on ``privacy.confirmations.v1``) and how many
  records each erased. The request record keeps a keyed hash of the address, never the address.
- The person's own way: ``POST /api/v1/privacy/erasure-request {email}`` emails a signed link
  (purpose ``privacy-erase``, 24 h) to that address; opening it shows a button that POSTs
  ``/api/v1/privacy/erasure/confirm?token=`` which publishes the same request. Always 202, so the
  answer never tells whether the address is known.
- Subject access: ``POST /api/v1/privacy/export-request {email}`` emails a signed link (purpose
  ``privacy-export``); ``GET /api/v1/privacy/export?token=`` returns what this service holds
  (follower record, attendee records, deliveries) as JSON. Registration's part is exported by
  staff (``GET /api/v1/privacy/export?email=`` on registration).
- This service's erasure: followers deleted; attendee read model pseudonymised (names
  ``erased``, statuses kept); deliveries to the address get the pseudonym as recipient and
  lose their data and errors (queued ones are not sent: status ``erased``); suppression entries
  are re-keyed by the pseudonym (the opt-out still holds for that hash); queued events and dead
  letters scrubbed (shared.privacy).
- Retention: when a stop is held, a timer pseudonymises its attendee read model
  ``RETENTION_DAYS`` (365) later.
- Follow sign-ups are rate limited per client address (``FOLLOWS_PER_MINUTE``, default 30).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from notifications import repository as repo
from notifications.domain import normalize_email, notification_key
from shared.auth import JwtVerifier, LinkSigner
from shared.contracts.base import CloudEventHeaders
from shared.contracts.privacy import ErasureCompletedV1, ErasureRequestedV1
from shared.contracts.venues import StopHeldV1
from shared.privacy import ERASED_DOMAIN, email_digest, pseudonym, wire_erasure
from shared.ratelimit import Limit, RateLimiter
from shared.runtime import ServiceRuntime
from shared.errors import NotFound
from shared.uow import TIMERS, Tx

ERASURE_REQUESTS = "erasure_requests"
ERASE, EXPORT = "privacy-erase", "privacy-export"
LINK_TTL_SECONDS = 24 * 3600
SERVICES = ("venues", "registration", "replays", "notifications")
ERASED = "erased"


class EmailBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr = Field(max_length=254)


# ---------------------------------------------------------------- erasure of this service's data


async def erase(tx: Tx, email: str, alias: str) -> int:
    db, s, count = tx.db, tx.session, 0
    count += (await db[repo.FOLLOWERS].delete_many({"email": email}, session=s)).deleted_count
    attendee_ids = [d["_id"] for d in await db[repo.ATTENDEES].find({"email": email}, {"_id": 1}, session=s).to_list()]
    if attendee_ids:  # no reminder may go out to the pseudonym
        await db[TIMERS].delete_many({"payload.registration_id": {"$in": attendee_ids}}, session=s)
    count += (await db[repo.ATTENDEES].update_many(
        {"email": email}, {"$set": {"email": alias, "first_name": ERASED, "last_name": ERASED, "manage_url": "",
                                    "erased": True}}, session=s)).modified_count
    deliveries = db[repo.DELIVERIES]
    count += (await deliveries.update_many(
        {"recipient": email, "status": "queued"}, {"$set": {"status": ERASED}}, session=s)).modified_count
    count += (await deliveries.update_many(
        {"recipient": email}, {"$set": {"recipient": alias, "data": {}, "last_error": None, "erased": True}},
        session=s)).modified_count
    suppression = await db[repo.SUPPRESSIONS].find_one({"_id": email}, session=s)
    if suppression is not None:
        await db[repo.SUPPRESSIONS].delete_one({"_id": email}, session=s)
        await db[repo.SUPPRESSIONS].replace_one({"_id": alias}, {**suppression, "_id": alias}, upsert=True, session=s)
        count += 1
    return count


def wire_privacy(runtime: ServiceRuntime, secret: str) -> None:
    """This service erases like every other, and records every service's confirmation."""
    wire_erasure(runtime, erase, secret=secret)

    @runtime.consumer.on(ErasureCompletedV1)
    async def confirmed(event: ErasureCompletedV1, tx: Tx, _: CloudEventHeaders | None = None) -> None:
        await tx.db[ERASURE_REQUESTS].update_one(
            {"_id": event.request_id},
            {"$set": {f"services.{event.service}": {"records": event.records, "confirmed_at": datetime.now(UTC)}}},
            upsert=True, session=tx.session)


ATTENDEE_RETENTION = "attendee_retention"


def wire_retention(runtime: ServiceRuntime, on_stop: Any, *, retention_days: float, secret: str) -> None:
    """When a stop is held, its attendees' personal data is pseudonymised ``retention_days`` later."""

    @runtime.consumer.on(StopHeldV1)
    async def held(event: StopHeldV1, tx: Tx, ce: CloudEventHeaders) -> None:
        await on_stop(event, tx, ce)
        await tx.schedule(f"{ATTENDEE_RETENTION}:{event.stop_id}", ATTENDEE_RETENTION,
                          datetime.now(UTC) + timedelta(days=retention_days), {"stop_id": event.stop_id})

    async def purge(tx: Tx, payload: dict[str, Any]) -> None:
        attendees = tx.db[repo.ATTENDEES]
        query = {"stop_id": payload["stop_id"], "erased": {"$ne": True}}
        for doc in await attendees.find(query, {"email": 1}, session=tx.session).to_list():
            await attendees.update_one({"_id": doc["_id"]}, {"$set": {
                "email": pseudonym(doc["email"], secret), "first_name": ERASED, "last_name": ERASED,
                "manage_url": "", "erased": True}}, session=tx.session)

    runtime.on_timer(ATTENDEE_RETENTION, purge)


# ---------------------------------------------------------------- the desk


class PrivacyDesk:
    def __init__(self, runtime: ServiceRuntime, signer: LinkSigner, *, secret: str, public_base_url: str,
                 services: tuple[str, ...] = SERVICES):
        self.runtime, self.signer, self.secret = runtime, signer, secret
        self.public = public_base_url.rstrip("/")
        self.services = services

    async def request_erasure(self, email: str, requested_by: str) -> str:
        email, request_id = normalize_email(email), uuid.uuid4().hex

        async def work(tx: Tx) -> None:
            await tx.db[ERASURE_REQUESTS].update_one(
                {"_id": request_id},
                {"$set": {"email_hash": email_digest(email, self.secret), "requested_by": requested_by,
                          "requested_at": datetime.now(UTC)}},
                upsert=True, session=tx.session)
            tx.emit(ErasureRequestedV1(request_id=request_id, email=email))

        await self.runtime.uow.run(work)
        return request_id

    async def status(self, request_id: str) -> dict[str, Any]:
        doc = await self.runtime.db[ERASURE_REQUESTS].find_one({"_id": request_id})
        if doc is None or "requested_at" not in doc:
            raise NotFound("no erasure request with this id")
        confirmed = doc.get("services", {})
        services = {name: {"status": "confirmed", **confirmed[name]} if name in confirmed else {"status": "pending"}
                    for name in sorted(set(self.services) | set(confirmed))}
        done = all(s["status"] == "confirmed" for s in services.values())
        return {"request_id": request_id, "requested_at": doc["requested_at"], "requested_by": doc["requested_by"],
                "status": "completed" if done else "pending", "services": services}

    async def send_link(self, email: str, purpose: str) -> None:
        """Email a signed link for ``purpose`` to the address (whoever asked: only its owner can use it)."""
        email = normalize_email(email)
        token = self.signer.sign(purpose, email, LINK_TTL_SECONDS)
        path = "erasure/confirm" if purpose == ERASE else "export"
        kind = "privacy_erasure" if purpose == ERASE else "privacy_export"
        delivery = repo.new_delivery(notification_key(f"{purpose}:{uuid.uuid4().hex}", email, kind), channel="email",
                                     kind=kind, recipient=email,
                                     data={"link_url": f"{self.public}/api/v1/privacy/{path}?token={token}"})
        delivery["transactional"] = True  # asked for by the person: sent even after an opt-out

        async def work(tx: Tx) -> None:
            await repo.enqueue(tx.db, [delivery], tx.session)

        await self.runtime.uow.run(work)

    async def export(self, token: str) -> dict[str, Any]:
        email = self.signer.verify(token, EXPORT)["s"]
        db = self.runtime.db
        follower = await db[repo.FOLLOWERS].find_one({"email": email})
        attendees = await db[repo.ATTENDEES].find({"email": email}).sort("_id", 1).to_list()
        deliveries = await db[repo.DELIVERIES].find(
            {"recipient": email}, {"kind": 1, "channel": 1, "status": 1, "created_at": 1, "sent_at": 1,
                                   "locale": 1}).sort("created_at", 1).to_list(1000)
        suppressed = await db[repo.SUPPRESSIONS].find_one({"_id": email})
        return jsonable_encoder({
            "service": "notifications", "email": email, "exported_at": datetime.now(UTC),
            "follower": _public(follower), "registrations": [_public(a) for a in attendees],
            "emails": [_public(d) for d in deliveries],
            "suppression": _public(suppressed) if suppressed else None,
            "elsewhere": "registrations held by the registration service are exported on request to the staff",
        })


def _public(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {("id" if k == "_id" else k): v for k, v in doc.items() if k not in ("manage_url",)}


def privacy_router(desk: PrivacyDesk, verifier: JwtVerifier, limiter: RateLimiter | None = None,
                   limit: Limit | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])

    async def throttle(request: Request) -> None:
        if limiter is not None and limit is not None:
            await limiter.check(limit, request)

    @router.post("/erasure", status_code=202)
    async def request_erasure(body: EmailBody, request: Request) -> dict[str, str]:
        """Staff: erase or pseudonymise this person's data in every service."""
        principal = verifier.require(request)
        principal.require_staff()
        request_id = await desk.request_erasure(body.email, f"staff:{principal.subject}")
        return {"request_id": request_id, "status_url": f"/api/v1/privacy/erasure/{request_id}"}

    @router.post("/erasure-request", status_code=202)
    async def erasure_request(body: EmailBody, request: Request) -> dict[str, str]:
        await throttle(request)
        await desk.send_link(body.email, ERASE)
        return {"status": "pending", "detail": "check your mailbox to confirm the erasure"}

    @router.get("/erasure/confirm", response_class=HTMLResponse, include_in_schema=False)
    async def erasure_confirm_page(token: str = Query(max_length=2000)) -> HTMLResponse:
        desk.signer.verify(token, ERASE)  # a dead or forged link says so before the button
        return HTMLResponse(
            # No action: the form posts to this very URL, token included.
            "<!doctype html><html><body><form method=post>"
            "<p>Effacer mes données IntercoTOUR / Erase my IntercoTOUR data</p>"
            "<button type=submit>Confirmer / Confirm</button></form></body></html>",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    @router.post("/erasure/confirm", status_code=202)
    async def erasure_confirm(token: str = Query(max_length=2000)) -> dict[str, str]:
        email = desk.signer.verify(token, ERASE)["s"]
        request_id = await desk.request_erasure(email, "self")
        return {"request_id": request_id, "status": "pending"}

    # After the fixed /erasure/confirm paths, which this pattern would otherwise capture.
    @router.get("/erasure/{request_id}")
    async def erasure_status(request_id: str, request: Request) -> JSONResponse:
        verifier.require(request).require_staff()
        return JSONResponse(jsonable_encoder(await desk.status(request_id)))

    @router.post("/export-request", status_code=202)
    async def export_request(body: EmailBody, request: Request) -> dict[str, str]:
        await throttle(request)
        await desk.send_link(body.email, EXPORT)
        return {"status": "pending", "detail": "check your mailbox for the download link"}

    @router.get("/export")
    async def export(token: str = Query(max_length=2000)) -> JSONResponse:
        return JSONResponse(await desk.export(token), headers={
            "Cache-Control": "private, no-store",
            "Content-Disposition": 'attachment; filename="intercotour-notifications.json"'})

    return router


__all__ = ["ERASED_DOMAIN", "PrivacyDesk", "privacy_router", "wire_privacy"]
