"""Composition root: settings → runtime, repository, service, consumers, routes."""

from __future__ import annotations

from fastapi import FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from shared.auth import JwtVerifier
from shared.http import create_http_app
from shared.logging import get_logger
from shared.ops import dead_letter_router
from shared.privacy import wire_erasure
from shared.ratelimit import RATE_LIMIT_INDEXES, Limit, RateLimiter
from shared.runtime import ServiceRuntime
from shared.serve import serve
from shared.uow import Tx, UnitOfWork

from venues import api
from venues.accounts import load_signing_key
from venues.config import Settings
from venues.handlers import VenuesService
from venues.lockout import LOCKOUT_INDEXES, LoginLockout
from venues.messaging import declare_publishers, register_consumers
from venues.repository import INDEXES, MongoRepository

log = get_logger(__name__)


def build_service(uow: UnitOfWork, db: AsyncDatabase, settings: Settings, *, signing_key: bytes) -> VenuesService:
    def repositories(tx: Tx | None) -> MongoRepository:
        return MongoRepository(db, tx.session if tx else None)

    return VenuesService(uow, repositories, settings=settings, signing_key=signing_key)


def login_limits(runtime: ServiceRuntime, settings: Settings) -> api.LoginLimits:
    window = 5 * 60
    return api.LoginLimits(
        RateLimiter(runtime.db, enabled=settings.rate_limits_enabled),
        per_account=Limit("login-account", settings.login_attempts_per_account, window),
        per_client=Limit("login-client", settings.login_attempts_per_client, window),
    )


async def _nothing_to_erase(_tx: Tx, _email: str, _alias: str) -> int:
    return 0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, indexes=[*INDEXES, *RATE_LIMIT_INDEXES, *LOCKOUT_INDEXES])
    service = build_service(runtime.uow, runtime.db, settings, signing_key=load_signing_key(settings))
    register_consumers(runtime, service)
    # Venues holds no attendee data (host accounts are not erased this way): it confirms, scrubbing dead letters.
    wire_erasure(runtime, _nothing_to_erase, secret=settings.link_secret.get_secret_value())
    declare_publishers(runtime)
    verifier = JwtVerifier(settings.jwt_public_key_file, audience=settings.jwt_audience, issuer=settings.jwt_issuer)

    async def ensure_staff_account() -> None:
        assert settings.admin_email and settings.admin_password  # enforced by Settings
        if await service.ensure_staff(settings.admin_email, settings.admin_password.get_secret_value()):
            log.info("venues.staff_account_created")

    app = create_http_app(
        title="venues",
        description="Host territories, stops, their programme and calendars.",
        runtime=runtime,
        routers=[api.router(service, verifier, login_limits(runtime, settings),
                            LoginLockout(runtime.db, after=settings.login_lockout_after,
                                         base_seconds=settings.login_lockout_base_seconds,
                                         enabled=settings.rate_limits_enabled)),
                 dead_letter_router(runtime, verifier)],
        on_startup=ensure_staff_account,
    )
    return app


def run() -> None:
    settings = Settings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    run()
