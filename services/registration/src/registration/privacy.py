"""Privacy in registration: erasure, retention, subject access (staff export), sign-up rate limit.

- Erasure (``ErasureRequestedV1``): the person's registrations stay (counts, statuses,
  check-ins, waitlist order keep adding up) but their email becomes a pseudonym
  (``erased-<hash>@erased.invalid``) and names/organisation become ``erased``; idempotency
  records (answers holding the email) are deleted; dead letters holding it are scrubbed.
  Confirmed by ``ErasureCompletedV1``. Events already published (Kafka keeps them 7 days
  in production) and outbox records not yet relayed are out of reach; Kafka retention
  bounds them.
- Retention: when a stop is held, a durable timer fires ``retention_days`` later and
  pseudonymises every registration of that stop the same way.
- Subject access: ``GET /api/v1/privacy/export?email=`` (staff) returns the person's
  registrations as JSON; the person's own download goes through notifications.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request

from shared.auth import JwtVerifier
from shared.contracts.base import CloudEventHeaders
from shared.contracts.venues import StopHeldV1
from shared.privacy import normalise, pseudonym, wire_erasure
from shared.runtime import ServiceRuntime
from shared.uow import Tx

from registration.repository import IDEMPOTENCY, REGISTRATIONS

RETENTION = "retention"
ERASED = "erased"
_PERSONAL = ("first_name", "last_name", "organisation")
_EXPORTED = ("_id", "stop_id", "status", "email", "first_name", "last_name", "organisation", "profile",
             "consents", "locale", "created_at", "updated_at", "checked_in_at", "cancelled_at", "cancelled_by")


def _erased_fields(alias: str, now: datetime) -> dict[str, Any]:
    return {"email": alias, **dict.fromkeys(_PERSONAL, ERASED), "erased": True, "erased_at": now}


async def _pseudonymise(tx: Tx, query: dict[str, Any], secret: str) -> int:
    """Pseudonymise every registration matching ``query`` (each with its own person's pseudonym)."""
    regs = tx.db[REGISTRATIONS]
    now, count = datetime.now(UTC), 0
    emails = {d["email"] for d in await regs.find({**query, "erased": {"$ne": True}}, {"email": 1},
                                                  session=tx.session).to_list()}
    for email in emails:
        result = await regs.update_many({**query, "email": email}, {"$set": _erased_fields(pseudonym(email, secret), now)},
                                        session=tx.session)
        count += result.modified_count
        count += (await tx.db[IDEMPOTENCY].delete_many({"body.email": email}, session=tx.session)).deleted_count
    return count


def eraser(secret: str):
    async def erase(tx: Tx, email: str, _alias: str) -> int:
        return await _pseudonymise(tx, {"email": email}, secret)

    return erase


def wire_privacy(runtime: ServiceRuntime, on_stop_event: Any, *, retention_days: float, secret: str) -> None:
    """Erasure consumer, and the retention timer planned when a stop is held."""
    wire_erasure(runtime, eraser(secret), secret=secret)

    @runtime.consumer.on(StopHeldV1)
    async def held(event: StopHeldV1, tx: Tx, ce: CloudEventHeaders | None = None) -> None:
        await on_stop_event(event, tx, ce)
        await tx.schedule(f"{RETENTION}:{event.stop_id}", RETENTION,
                          datetime.now(UTC) + timedelta(days=retention_days), {"stop_id": event.stop_id})

    async def purge(tx: Tx, payload: dict[str, Any]) -> None:
        await _pseudonymise(tx, {"stop_id": payload["stop_id"]}, secret)

    runtime.on_timer(RETENTION, purge)


def privacy_router(runtime: ServiceRuntime, verifier: JwtVerifier) -> APIRouter:
    router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])

    @router.get("/export")
    async def export(email: str, request: Request) -> dict[str, Any]:
        """Subject access (staff): every registration held for this email, as JSON."""
        verifier.require(request).require_staff()
        email = normalise(email)
        docs = await runtime.db[REGISTRATIONS].find({"email": email}).sort("created_at", 1).to_list()
        items = [{("id" if k == "_id" else k): _json(v) for k, v in d.items() if k in _EXPORTED} for d in docs]
        return {"service": "registration", "email": email, "registrations": items}

    return router


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
