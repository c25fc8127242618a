"""HTTP entry points (prefix /api/v1): following, preferences, one-click unsubscribe,
webhook endpoints, and the staff delivery log."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from notifications import repository as repo
from notifications.config import Settings
from notifications.domain import REGIONS, STATUSES, WEBHOOK_EVENT_TYPES, normalize_email
from notifications.followers import Followers
from notifications.webhooks import Resolver, check_url, new_secret, resolve
from shared.auth import JwtVerifier, Principal
from shared.errors import Forbidden, NotFound, Unprocessable
from shared.ratelimit import Limit, RateLimiter
from shared.runtime import ServiceRuntime

TEST_EVENT_TYPE = "notifications.webhook.test.v1"


def _known_region(code: str) -> str:
    if code not in REGIONS:
        raise ValueError(f"unknown region {code!r}; expected an ISO 3166-2:FR region code such as ARA, BRE, IDF")
    return code


def _known_event_type(name: str) -> str:
    if name not in WEBHOOK_EVENT_TYPES:
        raise ValueError(f"unknown event type {name!r}; allowed: {', '.join(sorted(WEBHOOK_EVENT_TYPES))}")
    return name


Region = Annotated[str, Field(max_length=8), AfterValidator(_known_region)]
EventType = Annotated[str, Field(max_length=100), AfterValidator(_known_event_type)]
Topic = Literal["replays", "stops"]


class FollowRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr = Field(max_length=254)
    regions: list[Region] = Field(min_length=1, max_length=20)
    topics: list[Topic] = Field(min_length=1, max_length=2)
    locale: Literal["fr", "en"] | None = None


class PreferencesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    regions: list[Region] | None = Field(default=None, max_length=20)
    topics: list[Topic] | None = Field(default=None, max_length=2)
    unsubscribe_all: bool = False


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000)
    event_types: list[EventType] = Field(min_length=1, max_length=10)
    regions: list[Region] = Field(min_length=1, max_length=20)
    description: str = Field(default="", max_length=500)
    contact_email: EmailStr | None = Field(default=None, max_length=254)


def follower_router(followers: Followers, limiter: RateLimiter | None = None,
                    follow_limit: Limit | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["followers"])

    @router.post("/followers", status_code=202)
    async def follow(body: FollowRequest, request: Request) -> dict[str, str]:
        if limiter is not None and follow_limit is not None:
            await limiter.check(follow_limit, request)
        await followers.follow(body.email, body.regions, body.topics, body.locale)
        return {"status": "pending", "detail": "check your mailbox to confirm"}

    @router.get("/followers/confirm")
    async def confirm(token: str = Query(max_length=2000)) -> dict[str, Any]:
        return await followers.confirm(token)

    @router.get("/preferences")
    async def get_preferences(token: str = Query(max_length=2000)) -> dict[str, Any]:
        return await followers.preferences(token)

    @router.post("/preferences")
    async def set_preferences(body: PreferencesUpdate, token: str = Query(max_length=2000)) -> dict[str, Any]:
        return await followers.update_preferences(token, body.regions, body.topics, body.unsubscribe_all)

    @router.post("/unsubscribe")
    async def unsubscribe(token: str = Query(max_length=2000)) -> dict[str, str]:
        # RFC 8058: mail clients POST "List-Unsubscribe=One-Click" as a form; the token alone decides.
        await followers.unsubscribe(token)
        return {"status": "unsubscribed"}

    return router


def webhook_router(runtime: ServiceRuntime, verifier: JwtVerifier, settings: Settings,
                   resolver: Resolver = resolve) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["webhooks"])
    db = runtime.db

    def visible(principal: Principal, endpoint: dict[str, Any]) -> bool:
        return principal.is_staff or endpoint.get("owner") == principal.subject

    @router.post("/webhooks", status_code=201)
    async def register(body: WebhookRequest, request: Request) -> dict[str, Any]:
        principal = verifier.require(request)
        if not principal.is_staff and any(region != principal.region for region in body.regions):
            raise Forbidden("a host may only register webhooks for its own region", fields={"regions": "not yours"})
        await check_url(body.url, settings=settings, resolver=resolver)
        owner_email = body.contact_email or (principal.subject if "@" in principal.subject else None)
        endpoint = {
            "_id": str(uuid.uuid4()), "url": body.url, "event_types": sorted(set(body.event_types)),
            "regions": sorted(set(body.regions)), "description": body.description, "secret": new_secret(),
            "owner": principal.subject, "owner_email": normalize_email(owner_email) if owner_email else None,
            "status": "active", "consecutive_failures": 0, "created_at": datetime.now(UTC),
        }
        await repo.insert_endpoint(db, endpoint)
        return {"id": endpoint["_id"], "secret": endpoint["secret"], **_endpoint_view(endpoint)}

    @router.get("/webhooks")
    async def list_webhooks(request: Request) -> dict[str, Any]:
        principal = verifier.require(request)
        query = {} if principal.is_staff else {"owner": principal.subject}
        items = [_endpoint_view(e) for e in await repo.list_endpoints(db, query)]
        return {"items": items, "count": len(items)}

    @router.delete("/webhooks/{endpoint_id}", status_code=204)
    async def delete_webhook(endpoint_id: str, request: Request) -> None:
        principal = verifier.require(request)
        endpoint = await repo.load_endpoint(db, endpoint_id)
        if endpoint is None or not visible(principal, endpoint) or endpoint["status"] == "deleted":
            raise NotFound("no such webhook endpoint")
        await repo.update_endpoint(db, endpoint_id, {"$set": {"status": "deleted", "deleted_at": datetime.now(UTC)}})

    @router.post("/webhooks/{endpoint_id}/test", status_code=202)
    async def test_webhook(endpoint_id: str, request: Request) -> dict[str, str]:
        principal = verifier.require(request)
        endpoint = await repo.load_endpoint(db, endpoint_id)
        if endpoint is None or not visible(principal, endpoint) or endpoint["status"] == "deleted":
            raise NotFound("no such webhook endpoint")
        if endpoint["status"] != "active":
            raise Unprocessable("this endpoint is disabled; register it again", fields={"id": "disabled"})
        delivery_id = uuid.uuid4().hex
        body = json.dumps({"type": TEST_EVENT_TYPE, "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                           "data": {"endpoint_id": endpoint_id}}, separators=(",", ":"))
        await repo.enqueue(db, [repo.new_delivery(delivery_id, channel="webhook", kind=TEST_EVENT_TYPE,
                                                  recipient=endpoint_id, data={"body": body})], None)
        return {"delivery_id": delivery_id, "status": "queued"}

    return router


def delivery_router(runtime: ServiceRuntime, verifier: JwtVerifier) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["deliveries"])

    @router.get("/deliveries")
    async def list_deliveries(request: Request, recipient: str | None = Query(None, max_length=254),
                              kind: str | None = Query(None, max_length=100),
                              status: Literal["queued", "sent", "failed", "suppressed"] | None = None,
                              limit: int = Query(100, ge=1, le=500)) -> JSONResponse:
        verifier.require(request).require_staff()
        filters: dict[str, Any] = {}
        if recipient:
            filters["recipient"] = normalize_email(recipient) if "@" in recipient else recipient
        if kind:
            filters["kind"] = kind
        if status:
            filters["status"] = status
        items = [{"id": d.pop("_id"), **d} for d in await repo.list_deliveries(runtime.db, filters, limit)]
        return JSONResponse(jsonable_encoder({"items": items, "count": len(items), "statuses": list(STATUSES)}))

    @router.post("/deliveries/{delivery_id}/retry", status_code=202)
    async def retry_delivery(delivery_id: str, request: Request) -> dict[str, str]:
        verifier.require(request).require_staff()
        if not await repo.requeue(runtime.db, delivery_id):
            raise NotFound("no failed delivery with this id")
        return {"id": delivery_id, "status": "queued"}

    return router


def _endpoint_view(endpoint: dict[str, Any]) -> dict[str, Any]:
    return jsonable_encoder({
        "id": endpoint["_id"], "url": endpoint["url"], "event_types": endpoint["event_types"],
        "regions": endpoint["regions"], "description": endpoint.get("description", ""),
        "status": endpoint["status"], "consecutive_failures": endpoint.get("consecutive_failures", 0),
        "created_at": endpoint.get("created_at"),
    })
