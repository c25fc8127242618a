"""Thin HTTP clients for the four services and the mail capture (one small class each).

Every call has a timeout. A backend that cannot be reached, times out or fails
with a 5xx raises ``ServiceUnavailable`` naming it, so the portal can show which
part is down; a 4xx raises ``ServiceError`` carrying the service's
``{error, detail, fields}`` envelope, so forms can show field errors.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from portal.config import Settings

Json = Any
_PATH_SAFE = "/:@-._~!$&'()*+,;="


class ServiceUnavailable(Exception):
    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} unavailable: {reason}")
        self.service = service


@dataclass
class ServiceError(Exception):
    status: int
    code: str
    detail: str
    fields: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail}"


def _error_from(response: httpx.Response) -> ServiceError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    fields = body.get("fields") if isinstance(body.get("fields"), dict) else {}
    return ServiceError(
        status=response.status_code,
        code=str(body.get("error") or "http_error"),
        detail=str(body.get("detail") or response.reason_phrase),
        fields={str(k): str(v) for k, v in fields.items()},
    )


# The address of the person the portal is serving: backends rate-limit public writes per
# client, so without it every sign-up made through the portal would share one bucket.
CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("portal_client_address", default=None)


class ServiceClient:
    """One backend: a base URL, a timeout and the error mapping above."""

    service = "service"

    def __init__(self, base_url: str, timeout: float, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, method: str, path: str, *, token: str | None = None, params: dict[str, Any] | None = None,
                   json: Json = None, headers: dict[str, str] | None = None) -> httpx.Response:
        headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        if (address := CLIENT_ADDRESS.get()) is not None:
            headers["X-Forwarded-For"] = address
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        # Paths carry ids taken from the portal's own URLs: escape what would break or redirect the
        # request (control characters were a 500, "?" or "#" would cut the path short).
        path = quote(path, safe=_PATH_SAFE)
        try:
            response = await self._http.request(method, path, params=clean, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(self.service, type(exc).__name__) from exc
        if response.status_code >= 500:
            raise ServiceUnavailable(self.service, f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    async def call(self, method: str, path: str, **kwargs: Any) -> Json:
        response = await self.send(method, path, **kwargs)
        return response.json() if response.content else None


def _items(body: Json) -> list[dict[str, Any]]:
    return list(body.get("items", [])) if isinstance(body, dict) else list(body or [])


class BackendService(ServiceClient):
    """One of the four services: each serves the shared dead-letter endpoints (shared.ops)."""

    async def dead_letters(self, token: str) -> list[dict[str, Any]]:
        return _items(await self.call("GET", "/api/v1/dead-letters", token=token))

    async def replay_dead_letter(self, token: str, dead_letter_id: str) -> Json:
        return await self.call("POST", f"/api/v1/dead-letters/{dead_letter_id}/replay", token=token)


class VenuesClient(BackendService):
    service = "venues"

    async def login(self, email: str, password: str) -> dict[str, Any]:
        return await self.call("POST", "/api/v1/auth/login", json={"email": email, "password": password})

    async def stops(self, token: str | None = None, **filters: Any) -> list[dict[str, Any]]:
        return _items(await self.call("GET", "/api/v1/stops", token=token, params=filters))

    async def stop(self, stop_id: str, token: str | None = None) -> dict[str, Any]:
        return await self.call("GET", f"/api/v1/stops/{stop_id}", token=token)

    async def create_stop(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", "/api/v1/stops", token=token, json=body)

    async def update_stop(self, token: str, stop_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call("PATCH", f"/api/v1/stops/{stop_id}", token=token, json=body)

    async def transition(self, token: str, stop_id: str, action: str, body: dict[str, Any] | None = None) -> Json:
        return await self.call("POST", f"/api/v1/stops/{stop_id}/{action}", token=token, json=body)

    async def add_session(self, token: str, stop_id: str, body: dict[str, Any]) -> Json:
        return await self.call("POST", f"/api/v1/stops/{stop_id}/sessions", token=token, json=body)

    async def update_session(self, token: str, stop_id: str, session_id: str, body: dict[str, Any]) -> Json:
        return await self.call("PATCH", f"/api/v1/stops/{stop_id}/sessions/{session_id}", token=token, json=body)

    async def delete_session(self, token: str, stop_id: str, session_id: str) -> Json:
        return await self.call("DELETE", f"/api/v1/stops/{stop_id}/sessions/{session_id}", token=token)

    async def stop_ics(self, stop_id: str) -> bytes:
        return (await self.send("GET", f"/api/v1/stops/{stop_id}.ics")).content


class RegistrationClient(BackendService):
    service = "registration"

    async def sign_up(self, stop_id: str, body: dict[str, Any], idempotency_key: str = "") -> dict[str, Any]:
        # The same key for a resubmitted form: the service answers with the first registration.
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self.call("POST", f"/api/v1/stops/{stop_id}/registrations", json=body, headers=headers)

    async def availability(self, stop_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/api/v1/stops/{stop_id}/availability")

    async def registration(self, registration_id: str, token: str) -> dict[str, Any]:
        return await self.call("GET", f"/api/v1/registrations/{registration_id}", params={"token": token})

    async def self_service(self, registration_id: str, token: str, action: str, body: dict[str, Any] | None = None) -> Json:
        """cancel, transfer, accept-offer or decline-offer, authorised by the signed link's token."""
        return await self.call("POST", f"/api/v1/registrations/{registration_id}/{action}", params={"token": token},
                               json=body)

    async def qr_svg(self, registration_id: str, token: str) -> bytes:
        return (await self.send("GET", f"/api/v1/registrations/{registration_id}/qr.svg", params={"token": token})).content

    async def attendees(self, token: str, stop_id: str) -> list[dict[str, Any]]:
        return _items(await self.call("GET", f"/api/v1/stops/{stop_id}/registrations", token=token))

    async def attendees_csv(self, token: str, stop_id: str) -> bytes:
        return (await self.send("GET", f"/api/v1/stops/{stop_id}/registrations.csv", token=token)).content

    async def check_in(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", "/api/v1/checkins", token=token, json=body)


class ReplaysClient(BackendService):
    service = "replays"

    async def replays(self, token: str | None = None, **filters: Any) -> dict[str, Any]:
        body = await self.call("GET", "/api/v1/replays", token=token, params=filters)
        items = _items(body)
        total = body.get("total", len(items)) if isinstance(body, dict) else len(items)
        return {"items": items, "total": total}

    async def create(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", "/api/v1/replays", token=token, json=body)

    async def set_chapters(self, token: str, replay_id: str, chapters: list[dict[str, Any]]) -> Json:
        return await self.call("PUT", f"/api/v1/replays/{replay_id}/chapters", token=token, json=chapters)

    async def transition(self, token: str, replay_id: str, action: str, body: dict[str, Any] | None = None) -> Json:
        return await self.call("POST", f"/api/v1/replays/{replay_id}/{action}", token=token, json=body)


class NotificationsClient(BackendService):
    service = "notifications"

    async def follow(self, body: dict[str, Any]) -> Json:
        return await self.call("POST", "/api/v1/followers", json=body)

    async def confirm(self, token: str) -> Json:
        return await self.call("GET", "/api/v1/followers/confirm", params={"token": token})

    async def preferences(self, token: str) -> dict[str, Any]:
        return await self.call("GET", "/api/v1/preferences", params={"token": token})

    async def save_preferences(self, token: str, body: dict[str, Any]) -> Json:
        return await self.call("POST", "/api/v1/preferences", params={"token": token}, json=body)

    async def unsubscribe(self, token: str) -> Json:
        return await self.call("POST", "/api/v1/unsubscribe", params={"token": token})

    async def deliveries(self, token: str, **filters: Any) -> list[dict[str, Any]]:
        return _items(await self.call("GET", "/api/v1/deliveries", token=token, params=filters))


class MailClient(ServiceClient):
    """The local mail capture (Mailpit API v1 subset)."""

    service = "mail"

    async def messages(self, limit: int = 200) -> list[dict[str, Any]]:
        body = await self.call("GET", "/api/v1/messages", params={"start": 0, "limit": limit})
        return list(body.get("messages") or [])

    async def message(self, message_id: str) -> dict[str, Any]:
        return await self.call("GET", f"/api/v1/message/{message_id}")


@dataclass
class Backends:
    venues: VenuesClient
    registration: RegistrationClient
    replays: ReplaysClient
    notifications: NotificationsClient
    mail: MailClient

    @classmethod
    def from_settings(cls, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> "Backends":
        timeout = settings.backend_timeout_s
        return cls(
            venues=VenuesClient(settings.venues_url, timeout, transport),
            registration=RegistrationClient(settings.registration_url, timeout, transport),
            replays=ReplaysClient(settings.replays_url, timeout, transport),
            notifications=NotificationsClient(settings.notifications_url, timeout, transport),
            mail=MailClient(settings.mail_url, timeout, transport),
        )

    def services(self) -> list[BackendService]:
        return [self.venues, self.registration, self.replays, self.notifications]

    async def aclose(self) -> None:
        for client in [*self.services(), self.mail]:
            await client.aclose()
