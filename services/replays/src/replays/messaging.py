"""Events in (venues' stops and sessions), the publication timer, and the declaration of what goes out.

Publishing itself is done by the outbox relay; the publisher below only documents
``replays.replays.v1`` in the service's AsyncAPI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.contracts.base import CloudEventHeaders
from shared.contracts.replays import EVENTS as REPLAY_EVENTS, ReplaySnapshot
from shared.contracts.topics import REPLAYS_REPLAYS
from shared.contracts.venues import (
    SESSION_EVENTS, STOP_EVENTS, SessionAddedV1, SessionRemovedV1, SessionUpdatedV1, StopCancelledV1,
)
from shared.runtime import ServiceRuntime
from shared.uow import Tx
from replays import handlers
from replays.handlers import Ctx

CtxFactory = Callable[[Tx], Ctx]


def register(runtime: ServiceRuntime, make_ctx: CtxFactory) -> None:
    async def stop_event(event: Any, tx: Tx, ce: CloudEventHeaders) -> None:
        # Any venues.stop.* event: each carries the whole stop snapshot.
        cancelled = event if isinstance(event, StopCancelledV1) else None
        await handlers.apply_stop(make_ctx(tx), event.stop, cancelled)

    async def session_changed(event: SessionAddedV1 | SessionUpdatedV1, tx: Tx, ce: CloudEventHeaders) -> None:
        await handlers.apply_session(make_ctx(tx), event.session)

    async def session_removed(event: SessionRemovedV1, tx: Tx, ce: CloudEventHeaders) -> None:
        await handlers.remove_session(make_ctx(tx), event.session.session_id)

    for model in STOP_EVENTS:
        runtime.consumer.on(model)(stop_event)
    for model in SESSION_EVENTS:
        runtime.consumer.on(model)(session_removed if model is SessionRemovedV1 else session_changed)

    async def publication_due(tx: Tx, payload: dict) -> None:
        await handlers.fire_scheduled_publication(make_ctx(tx), payload["replay_id"])

    runtime.on_timer(handlers.PUBLISH_TIMER, publication_due)

    runtime.broker.publisher(
        REPLAYS_REPLAYS, title="replays.replays.v1", schema=ReplaySnapshot,
        description="Replay lifecycle events, key = stop id: " + ", ".join(e.TYPE for e in REPLAY_EVENTS),
    )
