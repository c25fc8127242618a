"""HTTP in: request models (unknown fields refused, every text bounded), routes, JSON shapes.

Limits (characters): city 100, theme 300, venue name 200, address 300,
accessibility 1000, session title 200, room 100, speaker name/role/organisation
120, reason 500, territory name 200, contact name 120; at most 12 speakers per
session. Times: "HH:MM" (Europe/Paris, on the stop's date) or ISO 8601.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator, model_validator

from shared.auth import JwtVerifier, Principal
from shared.contracts.venues import SessionKind, StopStatus, TerritoryKind
from shared.errors import Unauthorized
from shared.ratelimit import Limit, RateLimiter, client_key

from venues import domain
from venues.accounts import normalise_email
from venues.domain import Session, Stop, Territory
from venues.handlers import VenuesService
from shared.calendar import calendar_of, stop_calendar
from venues.lockout import LoginLockout


def Text(max_length: int, min_length: int = 0) -> Any:  # noqa: N802 - reads as a type
    return Annotated[str, StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)]


Time = Annotated[str, StringConstraints(strip_whitespace=True, min_length=4, max_length=40)]
Region = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, min_length=1, max_length=8)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Patch(Strict):
    """A partial update: absent fields are kept; an explicit null is refused."""

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [k for k, v in data.items() if v is None and k in cls.model_fields]
            if nulls:
                raise ValueError(f"null is not a value for {', '.join(nulls)}; omit the field to keep it")
        return data

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class LoginIn(Strict):
    email: Text(254, 1)
    password: Text(256, 1)


class ContactIn(Strict):
    name: Text(120) = ""
    email: EmailStr | None = None


class TerritoryIn(Strict):
    """The contact comes as ``contact: {name, email}`` (or the flat ``contact_name``/``contact_email``)."""

    name: Text(200, 1)
    kind: TerritoryKind
    region: Region
    contact: ContactIn | None = None
    contact_email: EmailStr | None = None
    contact_name: Text(120) = ""

    def fields(self) -> dict[str, Any]:
        contact = self.contact or ContactIn(name=self.contact_name, email=self.contact_email)
        return {"name": self.name, "kind": self.kind, "region": self.region,
                "contact_name": contact.name, "contact_email": contact.email or ""}


class TerritoryPatch(Patch):
    name: Text(200, 1) | None = None
    kind: TerritoryKind | None = None
    contact: ContactIn | None = None

    def changes(self) -> dict[str, Any]:
        changes = super().changes()
        if self.contact is not None:
            del changes["contact"]
            changes.update(contact_name=self.contact.name, contact_email=self.contact.email or "")
        return changes


class HostIn(Strict):
    email: EmailStr
    password: Annotated[str, StringConstraints(min_length=10, max_length=128)]
    name: Text(120, 1)


class VenueIn(Strict):
    name: Text(200, 1)
    address: Text(300) = ""
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    accessibility: Text(1000) = ""


class StopIn(Strict):
    season: int = Field(ge=2000, le=2100)
    region: Region
    territory_id: Text(64, 1)
    city: Text(100, 1)
    venue: VenueIn
    date: date
    starts_at: Time
    ends_at: Time
    theme: Text(300, 1)
    capacity: int = Field(gt=0, le=10_000)
    offer_validity_hours: int = Field(default=48, ge=1, le=336)


class StopPatch(Patch):
    city: Text(100, 1) | None = None
    venue: VenueIn | None = None
    theme: Text(300, 1) | None = None
    capacity: int | None = Field(default=None, gt=0, le=10_000)
    starts_at: Time | None = None
    ends_at: Time | None = None
    offer_validity_hours: int | None = Field(default=None, ge=1, le=336)


class ReasonIn(Strict):
    reason: Text(500) = ""


class CancelIn(Strict):
    reason: Text(500, 1)


class PostponeIn(Strict):
    date: date
    starts_at: Time
    ends_at: Time


class SpeakerIn(Strict):
    name: Text(120, 1)
    role: Text(120) = ""
    organisation: Text(120) = ""


class SessionIn(Strict):
    kind: SessionKind
    title: Text(200, 1)
    starts_at: Time
    ends_at: Time
    room: Text(100) = ""
    speakers: list[SpeakerIn] = Field(default_factory=list, max_length=12)


class SessionPatch(Patch):
    kind: SessionKind | None = None
    title: Text(200, 1) | None = None
    starts_at: Time | None = None
    ends_at: Time | None = None
    room: Text(100) | None = None
    speakers: list[SpeakerIn] | None = Field(default=None, max_length=12)


class StopQuery(BaseModel):
    season: int | None = None
    region: Region | None = None
    status: StopStatus | None = None
    territory_id: Text(64) | None = None

    @field_validator("region")
    @classmethod
    def _known_region(cls, region: str | None) -> str | None:
        if region is not None and region not in domain.REGIONS:
            raise ValueError("unknown region code")
        return region


# --- JSON shapes ------------------------------------------------------------------------------

def session_json(session: Session) -> dict[str, Any]:
    return {
        "id": session.id, "kind": session.kind, "title": session.title, "room": session.room,
        "starts_at": session.starts_at.astimezone(domain.PARIS).isoformat(),
        "ends_at": session.ends_at.astimezone(domain.PARIS).isoformat(),
        "speakers": [s.model_dump() for s in session.speakers],
    }


def stop_json(stop: Stop) -> dict[str, Any]:
    snapshot = stop.snapshot().model_dump(mode="json")
    snapshot["id"] = snapshot.pop("stop_id")
    return {**snapshot, "reject_reason": stop.reject_reason, "sessions": [session_json(s) for s in stop.sessions],
            "ics_url": f"/api/v1/stops/{stop.id}.ics"}


def territory_json(territory: Territory) -> dict[str, Any]:
    return {"id": territory.id, "name": territory.name, "kind": territory.kind, "region": territory.region,
            "contact": {"name": territory.contact_name, "email": territory.contact_email},
            "contact_email": territory.contact_email, "contact_name": territory.contact_name}


def ics_response(body: bytes, filename: str) -> Response:
    return Response(body, media_type="text/calendar; charset=utf-8",
                    headers={"Content-Disposition": f'inline; filename="{filename}"'})


# --- routes -----------------------------------------------------------------------------------

SIMPLE_ACTIONS: dict[str, domain.Action] = {
    "accept": "accept", "open-registration": "open_registration", "close-registration": "close_registration",
    "mark-held": "mark_held", "archive": "archive",
}
# Stops the public season calendar leaves out: not (or no longer) planned.
NOT_IN_CALENDAR = frozenset({"proposed", "rejected"})


@dataclass(frozen=True)
class LoginLimits:
    """Guessing passwords is slowed per account (hashed email) and per client address."""

    limiter: RateLimiter
    per_account: Limit
    per_client: Limit

    async def check(self, request: Request, email: str) -> None:
        await self.limiter.hit(self.per_client, client_key(request))
        await self.limiter.hit(self.per_account, hashlib.sha256(normalise_email(email).encode()).hexdigest()[:24])


def router(service: VenuesService, verifier: JwtVerifier, login_limits: LoginLimits,
           lockout: LoginLockout | None = None) -> APIRouter:
    api = APIRouter(prefix="/api/v1", tags=["venues"])

    def who(request: Request) -> Principal:
        return verifier.require(request)

    @api.post("/auth/login", tags=["auth"])
    async def login(body: LoginIn, request: Request) -> dict[str, Any]:
        await login_limits.check(request, body.email)
        if lockout is None:
            return await service.login(body.email, body.password)
        await lockout.check(body.email)
        try:
            answer = await service.login(body.email, body.password)
        except Unauthorized:
            await lockout.failed(body.email)
            raise
        await lockout.succeeded(body.email)
        return answer

    @api.post("/territories", status_code=201)
    async def create_territory(body: TerritoryIn, request: Request) -> dict[str, Any]:
        return territory_json(await service.create_territory(who(request), **body.fields()))

    @api.get("/territories")
    async def list_territories() -> dict[str, Any]:
        return {"items": [territory_json(t) for t in await service.list_territories()]}

    @api.get("/territories/{territory_id}")
    async def get_territory(territory_id: str) -> dict[str, Any]:
        return territory_json(await service.get_territory(territory_id))

    @api.patch("/territories/{territory_id}")
    async def update_territory(territory_id: str, body: TerritoryPatch, request: Request) -> dict[str, Any]:
        return territory_json(await service.update_territory(who(request), territory_id, body.changes()))

    @api.post("/territories/{territory_id}/hosts", status_code=201)
    async def add_host(territory_id: str, body: HostIn, request: Request) -> dict[str, Any]:
        account = await service.add_host(who(request), territory_id, **body.model_dump())
        return {"id": account.id, "email": account.email, "name": account.name, "role": account.role,
                "territory_id": account.territory_id}

    @api.post("/stops", status_code=201)
    async def propose_stop(body: StopIn, request: Request) -> dict[str, Any]:
        return stop_json(await service.propose_stop(who(request), **body.model_dump()))

    @api.get("/stops")
    async def list_stops(query: Annotated[StopQuery, Query()]) -> dict[str, Any]:
        stops = await service.list_stops(**query.model_dump())
        return {"items": [stop_json(s) for s in stops], "count": len(stops)}

    @api.get("/calendar.ics", response_class=Response)
    async def season_calendar(season: int | None = None, region: Region | None = None) -> Response:
        if region is not None:
            domain.check_region(region)
        stops = await service.list_stops(season=season, region=region, exclude=NOT_IN_CALENDAR)
        name = " ".join(p for p in ("IntercoTOUR", str(season or ""), region or "") if p)
        body = calendar_of([s.snapshot() for s in stops], name=name)
        return ics_response(body, "intercotour.ics")

    # Declared before /stops/{stop_id}: that pattern would otherwise swallow "<id>.ics".
    @api.get("/stops/{stop_id}.ics", response_class=Response)
    async def stop_ics(stop_id: str) -> Response:
        stop = await service.get_stop(stop_id)
        return ics_response(stop_calendar(stop.snapshot()), f"intercotour-{stop.region.lower()}-{stop.season}.ics")

    @api.get("/stops/{stop_id}")
    async def get_stop(stop_id: str) -> dict[str, Any]:
        return stop_json(await service.get_stop(stop_id))

    @api.patch("/stops/{stop_id}")
    async def edit_stop(stop_id: str, body: StopPatch, request: Request) -> dict[str, Any]:
        return stop_json(await service.edit_stop(who(request), stop_id, body.changes()))

    for path, action in SIMPLE_ACTIONS.items():
        _add_simple_action(api, service, who, path, action)

    @api.post("/stops/{stop_id}/reject")
    async def reject(stop_id: str, request: Request, body: ReasonIn | None = None) -> dict[str, Any]:
        reason = body.reason if body else ""
        return stop_json(await service.act(who(request), stop_id, "reject", reason=reason))

    @api.post("/stops/{stop_id}/cancel")
    async def cancel(stop_id: str, body: CancelIn, request: Request) -> dict[str, Any]:
        return stop_json(await service.act(who(request), stop_id, "cancel", reason=body.reason))

    @api.post("/stops/{stop_id}/postpone")
    async def postpone(stop_id: str, body: PostponeIn, request: Request) -> dict[str, Any]:
        return stop_json(await service.postpone(who(request), stop_id, **body.model_dump()))

    @api.post("/stops/{stop_id}/sessions", status_code=201)
    async def add_session(stop_id: str, body: SessionIn, request: Request) -> dict[str, Any]:
        return session_json(await service.add_session(who(request), stop_id, **body.model_dump()))

    @api.patch("/stops/{stop_id}/sessions/{session_id}")
    async def update_session(stop_id: str, session_id: str, body: SessionPatch, request: Request) -> dict[str, Any]:
        return session_json(await service.update_session(who(request), stop_id, session_id, body.changes()))

    @api.delete("/stops/{stop_id}/sessions/{session_id}", status_code=204, response_class=Response)
    async def remove_session(stop_id: str, session_id: str, request: Request) -> Response:
        await service.remove_session(who(request), stop_id, session_id)
        return Response(status_code=204)

    return api


def _add_simple_action(api: APIRouter, service: VenuesService, who: Any, path: str, action: domain.Action) -> None:
    async def run(stop_id: str, request: Request) -> dict[str, Any]:
        return stop_json(await service.act(who(request), stop_id, action))

    api.add_api_route(f"/stops/{{stop_id}}/{path}", run, methods=["POST"], name=action,
                      summary=f"{path.replace('-', ' ').capitalize()} (transition to {domain.TRANSITIONS[action][1]})")
