"""Partner webhooks: endpoint rules (https only, no private addresses), Standard
Webhooks signatures, and the delivery loop (retries over hours, then dead letter;
an endpoint that keeps failing is disabled and its owner told)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from notifications import repository as repo
from notifications.config import Settings
from notifications.domain import notification_key, webhook_retry_delay
from shared.contracts.notifications import WebhookEndpointDisabledV1
from shared.errors import Unprocessable
from shared.logging import get_logger
from shared.uow import Tx, UnitOfWork

log = get_logger(__name__)

SECRET_PREFIX = "whsec_"
Resolver = Callable[[str, int], Awaitable[list[str]]]


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}`` keyed by the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, msg_id: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sign(secret, msg_id, ts, body),
            "content-type": "application/json"}


def _forbidden_ip(text: str) -> bool:
    ip = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_private or ip.is_loopback \
        or ip.is_link_local or ip.is_unspecified


async def resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


async def check_url(url: str, *, settings: Settings, resolver: Resolver = resolve) -> None:
    """Refuse (422 on ``url``) what a partner must not make us call: non-https outside
    local mode, and any host resolving to a loopback, link-local or private address."""
    def refuse(why: str) -> Unprocessable:
        return Unprocessable(f"webhook url refused: {why}", fields={"url": why})

    parts = urlsplit(url)
    allowed_schemes = ("https", "http") if settings.mode == "local" else ("https",)
    if parts.scheme not in allowed_schemes:
        raise refuse("must use https" if settings.mode != "local" else "must be http(s)")
    if not parts.hostname or parts.username or parts.password:
        raise refuse("must name a host and carry no credentials")
    if settings.private_webhooks_allowed:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await resolver(parts.hostname, port)
    except (OSError, ValueError) as exc:
        raise refuse(f"host does not resolve ({type(exc).__name__})") from exc
    if not addresses:
        raise refuse("host does not resolve")
    bad = [a for a in addresses if _forbidden_ip(a)]
    if bad:
        raise refuse(f"resolves to a private, loopback or link-local address ({bad[0]})")


class WebhookSender:
    def __init__(self, settings: Settings, db: AsyncDatabase, uow: UnitOfWork, *,
                 client: httpx.AsyncClient | None = None, resolver: Resolver = resolve):
        self.settings = settings
        self.db = db
        self.uow = uow
        self._client = client or httpx.AsyncClient(timeout=settings.webhook_timeout_seconds, follow_redirects=False)
        self._resolver = resolver

    async def run(self) -> None:
        try:
            while True:
                try:
                    sent = await self.send_due()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("webhooks.retry", error=repr(exc))
                    sent = 0
                if not sent:
                    await asyncio.sleep(self.settings.sender_poll_seconds)
        finally:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    async def send_due(self) -> int:
        """Claim one batch (one lease), attempt its due deliveries, record them, give the batch back."""
        claim = await repo.claim(self.db, "webhook", lease_seconds=self.settings.delivery_lease_seconds)
        if claim is None:
            return 0
        now = datetime.now(UTC)
        due, later = [], []
        for d in claim.deliveries:
            (due if d["next_attempt_at"].replace(tzinfo=UTC) <= now else later).append(d)
        next_due = min((d["next_attempt_at"].replace(tzinfo=UTC) for d in later), default=None)
        results = await asyncio.gather(*(self._attempt(d) for d in due))
        await repo.record_outcomes(self.db, zip(due, results))
        retries = [r["next_attempt_at"] for r in results if r["status"] == "queued"]
        await repo.settle(self.db, claim, min([*retries, *([next_due] if next_due else [])], default=None))
        return len(due) or 1

    async def _attempt(self, delivery: dict[str, Any]) -> dict[str, Any]:
        endpoint = await repo.load_endpoint(self.db, delivery["recipient"])
        now = datetime.now(UTC)
        if endpoint is None or endpoint["status"] != "active":
            return {"status": "suppressed", "last_error": "endpoint deleted or disabled"}
        error = await self._post(endpoint, delivery)
        if error is None:
            await repo.update_endpoint(self.db, endpoint["_id"], {"$set": {"consecutive_failures": 0}})
            return {"status": "sent", "sent_at": now, "last_error": None}
        delay = webhook_retry_delay(delivery["attempts"] + 1, self.settings.webhook_retry_schedule)
        if delay is not None:
            return {"status": "queued", "next_attempt_at": now + timedelta(seconds=delay), "last_error": error}
        await self._failed_for_good(endpoint, error)
        return {"status": "failed", "failed_at": now, "dead_lettered": True, "last_error": error}

    async def _post(self, endpoint: dict[str, Any], delivery: dict[str, Any]) -> str | None:
        """None when the receiver answered 2xx; otherwise why not."""
        try:
            # Resolved again at each attempt: a name may have been re-pointed since registration.
            await check_url(endpoint["url"], settings=self.settings, resolver=self._resolver)
            body = delivery["data"]["body"]
            response = await self._client.post(endpoint["url"], content=body.encode(),
                                               headers=signed_headers(endpoint["secret"], delivery["_id"], body))
        except Unprocessable as exc:
            return exc.detail
        except httpx.TimeoutException:
            return f"timeout after {self.settings.webhook_timeout_seconds}s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def _failed_for_good(self, endpoint: dict[str, Any], error: str) -> None:
        updated = await repo.update_endpoint(self.db, endpoint["_id"], {"$inc": {"consecutive_failures": 1}})
        if updated and updated["consecutive_failures"] >= self.settings.webhook_disable_after:
            await self.disable(endpoint["_id"], error)

    async def disable(self, endpoint_id: str, reason: str) -> None:
        async def work(tx: Tx) -> None:
            endpoint = await repo.load_endpoint(tx.db, endpoint_id, tx.session)
            if endpoint is None or endpoint["status"] != "active":
                return
            await repo.update_endpoint(tx.db, endpoint_id, {"$set": {"status": "disabled", "disabled_reason": reason,
                                                                     "disabled_at": datetime.now(UTC)}}, tx.session)
            tx.emit(WebhookEndpointDisabledV1(endpoint_id=endpoint_id, url=endpoint["url"], reason=reason,
                                              failures=endpoint.get("consecutive_failures", 0)))
            if endpoint.get("owner_email"):
                data = {"url": endpoint["url"], "endpoint_id": endpoint_id, "reason": reason,
                        "failures": endpoint.get("consecutive_failures", 0)}
                await repo.enqueue(tx.db, [repo.new_delivery(
                    notification_key(f"disabled:{endpoint_id}", endpoint["owner_email"], "webhook_disabled"),
                    channel="email", kind="webhook_disabled", recipient=endpoint["owner_email"],
                    locale="fr", data=data)], tx.session)

        await self.uow.run(work)
        log.warning("webhooks.endpoint_disabled", endpoint_id=endpoint_id, reason=reason)
