"""Signed self-service links: ``manage`` (view, cancel, transfer, QR) and ``offer`` (accept/decline).

Links point at the portal, which calls this service's API with the same token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.auth import LinkSigner
from shared.errors import Forbidden

from registration.domain import manage_link_ttl

MANAGE = "manage"
OFFER = "offer"


class Links:
    def __init__(self, signer: LinkSigner, portal_base_url: str, manage_days_after_end: int):
        self._signer = signer
        self._portal = portal_base_url.rstrip("/")
        self._days = manage_days_after_end

    def manage_url(self, registration_id: str, stop_ends_at: datetime) -> str:
        ttl = manage_link_ttl(datetime.now(UTC), stop_ends_at, self._days)
        token = self._signer.sign(MANAGE, registration_id, ttl)
        return f"{self._portal}/r/{registration_id}?token={token}"

    def offer_urls(self, registration_id: str, expires_at: datetime) -> tuple[str, str]:
        """(accept_url, decline_url); the token dies with the offer."""
        ttl = max(1, int((expires_at - datetime.now(UTC)).total_seconds()))
        token = self._signer.sign(OFFER, registration_id, ttl)
        base = f"{self._portal}/r/{registration_id}"
        return f"{base}/accept?token={token}", f"{base}/decline?token={token}"

    def check(self, token: str | None, registration_id: str, purposes: set[str]) -> dict[str, Any]:
        """403 for a forged, altered, wrong-purpose or other-registration token; 410 once expired."""
        payload = self._signer.verify(token, purposes)
        if payload.get("s") != registration_id:
            raise Forbidden("this link belongs to another registration")
        return payload
