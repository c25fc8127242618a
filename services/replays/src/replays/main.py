"""Composition root: settings → runtime, store, handlers, subscribers, timer and routes → the app."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from shared.auth import JwtVerifier
from shared.http import create_http_app
from shared.ops import dead_letter_router
from shared.privacy import wire_erasure
from shared.runtime import ServiceRuntime
from shared.serve import serve
from shared.uow import Tx
from replays import messaging
from replays.api import build_router
from replays.config import Settings
from replays.handlers import Ctx
from replays.repository import INDEXES, Catalogue, MongoReplayStore


async def _nothing_to_erase(_tx: Tx, _email: str, _alias: str) -> int:
    return 0


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None) -> FastAPI:
    settings = settings or Settings()
    now = clock or (lambda: datetime.now(UTC))
    runtime = ServiceRuntime(settings, indexes=INDEXES)
    verifier = JwtVerifier(settings.jwt_public_key_file, audience=settings.jwt_audience, issuer=settings.jwt_issuer)
    window = timedelta(seconds=settings.batch_window_seconds)

    def make_ctx(tx: Tx) -> Ctx:
        # MongoDB keeps milliseconds: truncating here makes a response and a later read agree.
        at = now()
        return Ctx(store=MongoReplayStore(tx), tx=tx, now=at.replace(microsecond=at.microsecond // 1000 * 1000),
                   batch_window=window)

    messaging.register(runtime, make_ctx)
    # Replays holds no attendee data: it confirms erasures (scrubbing its dead letters).
    wire_erasure(runtime, _nothing_to_erase, secret=settings.link_secret.get_secret_value())
    return create_http_app(
        title="replays",
        description="Recordings of each stop: processing, publication and the public catalogue.",
        runtime=runtime,
        routers=[build_router(runtime.uow, Catalogue(runtime.db), verifier, make_ctx),
                 dead_letter_router(runtime, verifier)],
    )


def run() -> None:
    settings = Settings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    run()
