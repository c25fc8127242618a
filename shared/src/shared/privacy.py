"""RGPD erasure, the part every service shares.

``privacy.requests.v1`` carries ``ErasureRequestedV1 {request_id, email}``; each
service erases or pseudonymises what it holds about that email in one unit of
work (inbox claim included, so a redelivery does nothing twice) and emits
``ErasureCompletedV1 {request_id, service, records}`` on
``privacy.confirmations.v1`` in the same transaction.

Pseudonyms are a keyed hash of the normalised email: stable (the same person
gets the same pseudonym in every record, so counts and uniqueness still hold)
but not reversible without the service's secret, and never the address itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from shared.contracts.base import CloudEventHeaders
from shared.contracts.privacy import ErasureCompletedV1, ErasureRequestedV1
from shared.logging import get_logger
from shared.uow import Tx

log = get_logger(__name__)

# (tx, normalised email, pseudonym) -> number of records erased or pseudonymised
Eraser = Callable[[Tx, str, str], Awaitable[int]]

ERASED_DOMAIN = "erased.invalid"


def normalise(email: str) -> str:
    return email.strip().lower()


def email_digest(email: str, secret: str = "") -> str:
    """A keyed, stable hash of the normalised email (hex, 24 chars)."""
    return hmac.new(secret.encode(), normalise(email).encode(), hashlib.sha256).hexdigest()[:24]


def pseudonym(email: str, secret: str = "") -> str:
    """What replaces an erased address: ``erased-<hash>@erased.invalid`` (still unique per person)."""
    return f"erased-{email_digest(email, secret)}@{ERASED_DOMAIN}"


async def scrub_raw_records(tx: Tx, email: str, replacement: str) -> int:
    """Raw event bodies this service still holds: outbox records not yet published and dead
    letters. The address is replaced in place (a queued event then leaves with the pseudonym)."""
    from shared.messaging.deadletters import DEAD_LETTERS
    from shared.messaging.outbox import OUTBOX

    needle, count = email.encode(), 0
    for collection, fld in ((OUTBOX, "payload"), (DEAD_LETTERS, "value")):
        async for doc in tx.db[collection].find({}, {fld: 1}, session=tx.session):
            cleaned = _scrubbed(needle, replacement.encode(), bytes(doc.get(fld) or b""))
            if cleaned is not None:
                await tx.db[collection].update_one({"_id": doc["_id"]}, {"$set": {fld: cleaned}}, session=tx.session)
                count += 1
    return count


def _scrubbed(needle: bytes, replacement: bytes, value: bytes) -> bytes | None:
    """``value`` with ``needle`` replaced (case-insensitive), or None when it does not hold it."""
    return _replace_ci(value, needle, replacement) if needle in value.lower() else None


def _replace_ci(value: bytes, needle: bytes, replacement: bytes) -> bytes:
    out, low, start = bytearray(), value.lower(), 0
    while (i := low.find(needle, start)) >= 0:
        out += value[start:i] + replacement
        start = i + len(needle)
    return bytes(out + value[start:])


def wire_erasure(runtime: Any, eraser: Eraser, *, secret: str = "") -> None:
    """Consume ErasureRequestedV1 on ``runtime.consumer``: erase, then confirm by event."""
    service = runtime.settings.service_name

    @runtime.consumer.on(ErasureRequestedV1)
    async def on_erasure(event: ErasureRequestedV1, tx: Tx, _: CloudEventHeaders | None = None) -> None:
        email = normalise(event.email)
        alias = pseudonym(email, secret)
        records = await eraser(tx, email, alias) + await scrub_raw_records(tx, email, alias)
        # The relay's memory too: records waiting to go out, and those kept for a broker reset.
        runtime.relay.rewrite_payloads(partial(_scrubbed, email.encode(), alias.encode()))
        tx.emit(ErasureCompletedV1(request_id=event.request_id, service=service, records=records))
        # Never log the address: the request id is enough to follow it.
        log.info("privacy.erased", request_id=event.request_id, records=records)
