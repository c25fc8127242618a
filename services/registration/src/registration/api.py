"""HTTP in: request models (unknown fields refused), routes under /api/v1."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator

from shared.auth import JwtVerifier
from shared.contracts.registration import Profile
from shared.ratelimit import Limit, RateLimiter

from registration.domain import EMAIL_MAX, NAME_MAX, ORGANISATION_MAX, normalise_email
from registration.handlers import Applicant, Registrations
from registration.hosts import HostDesk

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX)]
Organisation = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=ORGANISATION_MAX)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Consents(_Strict):
    """Each consent must be given explicitly, true or false: nothing is pre-ticked."""

    contact: StrictBool
    photo: StrictBool
    recording: StrictBool


class SignUpRequest(_Strict):
    email: str = Field(max_length=EMAIL_MAX + 20, description="lower-cased and trimmed before use")
    first_name: Name
    last_name: Name
    organisation: Organisation
    profile: Profile
    consents: Consents
    locale: Literal["fr", "en"] = "fr"

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalise_email(value)

    @field_validator("first_name", "last_name", "organisation")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValueError("control characters are not allowed")
        return value

    def applicant(self) -> Applicant:
        return Applicant(email=self.email, first_name=self.first_name, last_name=self.last_name,
                         organisation=self.organisation, profile=self.profile,
                         consents=self.consents.model_dump(), locale=self.locale)


class TransferRequest(_Strict):
    to_stop_id: Token


class CheckInRequest(_Strict):
    code: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    stop_id: Token
    nonce: Annotated[str, StringConstraints(min_length=1, max_length=100)]


def attendee_router(registrations: Registrations, limiter: RateLimiter | None = None,
                    signup_limit: Limit | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["registrations"])

    @router.post("/stops/{stop_id}/registrations", status_code=201)
    async def sign_up(stop_id: str, body: SignUpRequest, request: Request, idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", max_length=200)] = None) -> JSONResponse:
        if limiter is not None and signup_limit is not None:
            await limiter.check(signup_limit, request)
        status, answer = await registrations.sign_up(stop_id, body.applicant(), idempotency_key)
        return JSONResponse(answer, status_code=status)

    @router.get("/registrations/{registration_id}")
    async def view(registration_id: str, token: str | None = None) -> dict[str, Any]:
        return await registrations.view(registration_id, token)

    @router.post("/registrations/{registration_id}/cancel")
    async def cancel(registration_id: str, token: str | None = None) -> dict[str, Any]:
        return await registrations.cancel(registration_id, token)

    @router.post("/registrations/{registration_id}/transfer")
    async def transfer(registration_id: str, body: TransferRequest, token: str | None = None) -> dict[str, Any]:
        return await registrations.transfer(registration_id, token, body.to_stop_id)

    @router.post("/registrations/{registration_id}/accept-offer")
    async def accept_offer(registration_id: str, token: str | None = None) -> dict[str, Any]:
        return await registrations.accept_offer(registration_id, token)

    @router.post("/registrations/{registration_id}/decline-offer")
    async def decline_offer(registration_id: str, token: str | None = None) -> dict[str, Any]:
        return await registrations.decline_offer(registration_id, token)

    @router.get("/registrations/{registration_id}/qr.svg")
    async def qr(registration_id: str, token: str | None = None) -> Response:
        svg = await registrations.qr_code(registration_id, token)
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, no-store"})

    return router


def host_router(desk: HostDesk, verifier: JwtVerifier) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["hosts"])

    @router.get("/stops/{stop_id}/availability")
    async def availability(stop_id: str) -> dict[str, Any]:
        return await desk.availability(stop_id)

    @router.get("/stops/{stop_id}/registrations")
    async def roster(stop_id: str, request: Request) -> dict[str, Any]:
        items = await desk.roster(verifier.require(request), stop_id)
        return {"items": items, "count": len(items)}

    @router.get("/stops/{stop_id}/registrations.csv")
    async def roster_csv(stop_id: str, request: Request) -> Response:
        rows = await desk.roster(verifier.require(request), stop_id)
        return Response(desk.to_csv(rows), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="registrations-{_safe(stop_id)}.csv"'})

    @router.post("/checkins")
    async def check_in(body: CheckInRequest, request: Request) -> dict[str, Any]:
        return await desk.check_in(verifier.require(request), body.code, body.stop_id, body.nonce)

    return router


def _safe(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum() or ch in "-_")[:80] or "stop"
