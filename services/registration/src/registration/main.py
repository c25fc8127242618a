"""Composition root: runtime, handlers, subscribers, timers and routers → the FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from shared.auth import JwtVerifier, LinkSigner
from shared.http import create_http_app
from shared.ops import dead_letter_router
from shared.ratelimit import RATE_LIMIT_INDEXES, Limit, RateLimiter
from shared.runtime import ServiceRuntime
from shared.serve import serve

from registration.api import attendee_router, host_router
from registration.config import Settings
from registration.handlers import Registrations
from registration.hosts import HostDesk
from registration.links import Links
from registration.messaging import wire
from registration.places import Places
from registration.privacy import privacy_router, wire_privacy
from registration.reactions import StopReactions
from registration.repository import INDEXES


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, indexes=[*INDEXES, *RATE_LIMIT_INDEXES])
    verifier = JwtVerifier(settings.jwt_public_key_file, audience=settings.jwt_audience, issuer=settings.jwt_issuer)
    links = Links(LinkSigner(settings.link_secret.get_secret_value(), namespace=settings.service_name),
                  settings.portal_base_url, settings.manage_link_days_after_end)
    places = Places(links)
    registrations = Registrations(runtime.uow, places, links)
    reactions = StopReactions(places, settings.no_show_grace_minutes)
    wire(runtime, reactions)
    wire_privacy(runtime, reactions.on_stop_event, retention_days=settings.retention_days,
                 secret=settings.link_secret.get_secret_value())
    limiter = RateLimiter(runtime.db, enabled=settings.rate_limits_enabled)
    app = create_http_app(
        title="registration",
        description="Sign-ups per stop, capacity and instant waitlist, self-service links, check-in.",
        runtime=runtime,
        routers=[attendee_router(registrations, limiter, Limit("signup", settings.signups_per_minute, 60)),
                 host_router(HostDesk(runtime.uow, places), verifier),
                 privacy_router(runtime, verifier), dead_letter_router(runtime, verifier)],
    )
    app.state.registrations = registrations
    return app


def run() -> None:
    settings = Settings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    run()
