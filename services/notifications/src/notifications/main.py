"""Composition root: settings → runtime, consumers, sender loops, HTTP routers."""

from __future__ import annotations

from fastapi import FastAPI

from notifications import repository as repo
from notifications.api import delivery_router, follower_router, webhook_router
from notifications.config import Settings
from notifications.fanout import FanOut
from notifications.followers import Followers
from notifications.handlers import EventHandlers
from notifications.mailer import Composer, Links
from notifications.messaging import register_consumers
from notifications.privacy import PrivacyDesk, privacy_router, wire_privacy, wire_retention
from notifications.sender import EmailSender
from notifications.webhooks import Resolver, WebhookSender, resolve
from shared.auth import JwtVerifier, LinkSigner
from shared.http import create_http_app
from shared.messaging.lease import Lease
from shared.ops import dead_letter_router
from shared.ratelimit import RATE_LIMIT_INDEXES, Limit, RateLimiter
from shared.runtime import ServiceRuntime
from shared.serve import serve


def create_app(settings: Settings | None = None, *, resolver: Resolver = resolve) -> FastAPI:
    settings = settings or Settings()
    runtime = ServiceRuntime(settings, indexes=[*repo.INDEXES, *RATE_LIMIT_INDEXES])
    signer = LinkSigner(settings.link_secret.get_secret_value(), namespace=settings.service_name)
    verifier = JwtVerifier(settings.jwt_public_key_file, audience=settings.jwt_audience, issuer=settings.jwt_issuer)
    links = Links(signer, portal=settings.portal_base_url, public=settings.public_base_url,
                  ttl_confirm=settings.follow_confirm_ttl_seconds, ttl_prefs=settings.preferences_ttl_seconds)
    composer = Composer(links, mail_from=settings.mail_from, unsubscribe_mailto=settings.unsubscribe_mailto)

    handlers = EventHandlers(settings)
    fanout = FanOut(settings, handlers)
    register_consumers(runtime, handlers, fanout)
    secret = settings.link_secret.get_secret_value()
    wire_privacy(runtime, secret)
    wire_retention(runtime, handlers.on_stop, retention_days=settings.retention_days, secret=secret)
    limiter = RateLimiter(runtime.db, enabled=settings.rate_limits_enabled)
    privacy = PrivacyDesk(runtime, signer, secret=secret, public_base_url=settings.public_base_url)
    followers = Followers(runtime.uow, signer)

    async def on_startup() -> None:
        runtime.background(EmailSender(settings, runtime.db, composer).run())
        runtime.background(WebhookSender(settings, runtime.db, runtime.uow, resolver=resolver).run())
        lease = Lease(runtime.db, f"{settings.service_name}.fanout", ttl_seconds=settings.lease_seconds)
        runtime.background(fanout.run(runtime.db, lease))

    app = create_http_app(
        title="IntercoTOUR notifications",
        description="Transactional email, followers, replay fan-out and signed partner webhooks.",
        runtime=runtime,
        routers=[follower_router(followers, limiter, Limit("follow", settings.follows_per_minute, 60)),
                 privacy_router(privacy, verifier, limiter, Limit("privacy", settings.privacy_requests_per_minute, 60)),
                 webhook_router(runtime, verifier, settings, resolver),
                 delivery_router(runtime, verifier), dead_letter_router(runtime, verifier)],
        on_startup=on_startup,
    )
    app.state.settings = settings
    return app


def run() -> None:
    settings = Settings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    run()
