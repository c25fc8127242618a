"""Use cases. Each runs inside one transaction (``Ctx``): load, check who may act, decide with
the domain, save, record events and timers — all committed together or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.auth import Principal
from shared.contracts.base import Event
from shared.contracts.replays import (
    Chapter, Provider, ReplayChaptersUpdatedV1, ReplayCreatedV1, ReplayFailedV1, ReplayPublishedV1,
    ReplayReadyV1, ReplayRepublishedV1, ReplayScheduledV1, ReplaySnapshot, ReplayUnpublishedV1,
    ReplayUnscheduledV1,
)
from shared.contracts.venues import SessionSnapshot, StopCancelledV1, StopSnapshot
from shared.errors import NotFound, Unprocessable
from replays.domain import Batch, Replay, SessionView, Speaker, StopView, batch_for, publication_refusals

PUBLISH_TIMER = "replays.publish"


def publish_timer_id(replay_id: str) -> str:
    return f"replay-publish:{replay_id}"


class ReplayStore(Protocol):
    """The reads and writes a use case makes, inside its transaction (repository.MongoReplayStore)."""

    async def replay(self, replay_id: str) -> Replay | None: ...
    async def add_replay(self, replay: Replay) -> None: ...
    async def save_replay(self, replay: Replay) -> None: ...
    async def replays_of_stop(self, stop_id: str, publications: list[str]) -> list[Replay]: ...
    async def replays_of_session(self, session_id: str) -> list[Replay]: ...
    async def stop(self, stop_id: str) -> StopView | None: ...
    async def save_stop(self, stop: StopView) -> None: ...
    async def session(self, session_id: str) -> SessionView | None: ...
    async def save_session(self, session: SessionView) -> None: ...
    async def delete_session(self, session_id: str) -> None: ...
    async def open_batch(self, stop_id: str) -> Batch | None: ...
    async def save_batch(self, stop_id: str, batch: Batch) -> None: ...


class Outbox(Protocol):
    """What a use case records besides state: events and durable timers (shared.uow.Tx)."""

    def emit(self, event: Event) -> None: ...
    async def schedule(self, timer_id: str, kind: str, due_at: datetime, payload: dict[str, Any]) -> None: ...
    async def cancel_timer(self, timer_id: str) -> None: ...


@dataclass
class Ctx:
    store: ReplayStore
    tx: Outbox
    now: datetime
    batch_window: timedelta


Loaded = tuple[Replay, StopView | None]


def snapshot(replay: Replay, stop: StopView | None) -> ReplaySnapshot:
    place = stop.model_dump(include={"season", "region", "city", "theme"}) if stop else {}
    return ReplaySnapshot(replay_id=replay.id, **replay.model_dump(exclude={"id"}), **place)


def _emit(ctx: Ctx, event_class: type[Event], replay: Replay, stop: StopView | None, **fields: Any) -> None:
    ctx.tx.emit(event_class(replay_id=replay.id, stop_id=replay.stop_id, replay=snapshot(replay, stop), **fields))


# -- HTTP use cases -----------------------------------------------------------------------

async def create_replay(ctx: Ctx, principal: Principal, *, stop_id: str, session_id: str | None, title: str,
                        description: str, provider: Provider, url: str, duration_s: int,
                        speakers: list[Speaker]) -> Loaded:
    stop = await ctx.store.stop(stop_id)
    if stop is None:
        raise Unprocessable(f"unknown stop {stop_id!r}", fields={"stop_id": "no such stop (not announced by venues)"})
    principal.require_territory(stop.territory_id)
    session = await _session_of(ctx, stop_id, session_id)
    replay = Replay.new(stop_id=stop_id, session=session, title=title, description=description, provider=provider,
                        url=url, duration_s=duration_s, speakers=speakers, now=ctx.now)
    await ctx.store.add_replay(replay)
    _emit(ctx, ReplayCreatedV1, replay, stop)
    return replay, stop


async def update_replay(ctx: Ctx, principal: Principal, replay_id: str, changes: dict[str, Any]) -> Loaded:
    """Apply a partial update; ``changes`` holds only the fields the client sent."""
    replay, stop = await _managed(ctx, principal, replay_id)
    if "session_id" in changes:
        session = await _session_of(ctx, replay.stop_id, changes["session_id"])
        replay.session_id = session.session_id if session else None
        replay.session_kind = session.kind if session else None
    if "provider" in changes or "url" in changes:
        replay.change_video(changes.get("provider", replay.provider), changes.get("url", replay.url), ctx.now)
    if "duration_s" in changes:
        replay.change_duration(changes["duration_s"], ctx.now)
    if "speakers" in changes:
        replay.change_speakers([Speaker.model_validate(s) for s in changes["speakers"]], ctx.now)
    for name in ("title", "description"):
        if name in changes:
            setattr(replay, name, changes[name])
    replay.updated_at = ctx.now
    await ctx.store.save_replay(replay)
    return replay, stop


async def set_chapters(ctx: Ctx, principal: Principal, replay_id: str, chapters: list[Chapter]) -> Loaded:
    replay, stop = await _managed(ctx, principal, replay_id)
    if replay.set_chapters(chapters, ctx.now):
        await ctx.store.save_replay(replay)
        _emit(ctx, ReplayChaptersUpdatedV1, replay, stop)
    return replay, stop


async def mark_ready(ctx: Ctx, principal: Principal, replay_id: str) -> Loaded:
    replay, stop = await _managed(ctx, principal, replay_id)
    if replay.mark_ready(ctx.now):
        await ctx.store.save_replay(replay)
        _emit(ctx, ReplayReadyV1, replay, stop)
    return replay, stop


async def mark_failed(ctx: Ctx, principal: Principal, replay_id: str, reason: str) -> Loaded:
    replay, stop = await _managed(ctx, principal, replay_id)
    if replay.mark_failed(reason, ctx.now):
        await ctx.store.save_replay(replay)
        _emit(ctx, ReplayFailedV1, replay, stop, reason=reason)
    return replay, stop


async def schedule(ctx: Ctx, principal: Principal, replay_id: str, publish_at: datetime) -> Loaded:
    replay, stop = await _managed(ctx, principal, replay_id)
    replay.schedule(publish_at, stop, ctx.now)
    await ctx.store.save_replay(replay)
    # Same timer id: re-scheduling re-plans the one timer instead of adding a second.
    await ctx.tx.schedule(publish_timer_id(replay.id), PUBLISH_TIMER, publish_at, {"replay_id": replay.id})
    _emit(ctx, ReplayScheduledV1, replay, stop, publish_at=publish_at)
    return replay, stop


async def unschedule(ctx: Ctx, principal: Principal, replay_id: str) -> Loaded:
    replay, stop = await _managed(ctx, principal, replay_id)
    if replay.unschedule(ctx.now):
        await _save_unscheduled(ctx, replay, stop)
    return replay, stop


async def publish(ctx: Ctx, principal: Principal, replay_id: str) -> Loaded:
    replay, stop = await _managed(ctx, principal, replay_id)
    was_scheduled = replay.publication == "scheduled"
    await _publish(ctx, replay, stop)
    if was_scheduled:
        await ctx.tx.cancel_timer(publish_timer_id(replay.id))
    return replay, stop


async def unpublish(ctx: Ctx, principal: Principal, replay_id: str, reason: str) -> Loaded:
    replay, stop = await _managed(ctx, principal, replay_id)
    if replay.unpublish(ctx.now):
        await ctx.store.save_replay(replay)
        _emit(ctx, ReplayUnpublishedV1, replay, stop, reason=reason)
    return replay, stop


async def _managed(ctx: Ctx, principal: Principal, replay_id: str) -> Loaded:
    """The replay and its stop, if ``principal`` manages the stop's territory (hosts) or is staff."""
    replay = await ctx.store.replay(replay_id)
    if replay is None:
        raise NotFound(f"no replay {replay_id!r}")
    stop = await ctx.store.stop(replay.stop_id)
    principal.require_territory(stop.territory_id if stop else None)
    return replay, stop


async def _session_of(ctx: Ctx, stop_id: str, session_id: str | None) -> SessionView | None:
    if session_id is None:
        return None
    session = await ctx.store.session(session_id)
    if session is None or session.stop_id != stop_id:
        raise Unprocessable(f"unknown session {session_id!r} for stop {stop_id!r}",
                            fields={"session_id": "no such session in this stop"})
    return session


async def _publish(ctx: Ctx, replay: Replay, stop: StopView | None) -> None:
    """Publish (rules checked by the domain); the first publication ever joins a batch and is announced
    with ReplayPublishedV1, any later one with ReplayRepublishedV1 so nobody is notified twice."""
    outcome = replay.publish(stop, ctx.now)
    if outcome is None:
        return
    if outcome == "first":
        current = await ctx.store.open_batch(replay.stop_id)
        batch = batch_for(current, ctx.now, ctx.batch_window)
        if batch != current:
            await ctx.store.save_batch(replay.stop_id, batch)
        replay.batch_id = batch.batch_id
    await ctx.store.save_replay(replay)
    if outcome == "first":
        _emit(ctx, ReplayPublishedV1, replay, stop, batch_id=replay.batch_id, published_at=ctx.now)
    else:
        _emit(ctx, ReplayRepublishedV1, replay, stop, published_at=ctx.now)


async def _save_unscheduled(ctx: Ctx, replay: Replay, stop: StopView | None) -> None:
    await ctx.tx.cancel_timer(publish_timer_id(replay.id))
    await ctx.store.save_replay(replay)
    _emit(ctx, ReplayUnscheduledV1, replay, stop, reasons=replay.refused_reasons)


# -- timer ---------------------------------------------------------------------------------

async def fire_scheduled_publication(ctx: Ctx, replay_id: str) -> None:
    """The publication time came: publish if the rules still hold, else back to draft with the reasons."""
    replay = await ctx.store.replay(replay_id)
    if replay is None or replay.publication != "scheduled":
        return  # unscheduled, published by hand or withdrawn since: nothing left to do
    stop = await ctx.store.stop(replay.stop_id)
    reasons = publication_refusals(replay, stop)
    if reasons:
        replay.unschedule(ctx.now, reasons)
        await _save_unscheduled(ctx, replay, stop)
    else:
        await _publish(ctx, replay, stop)


# -- venues events -------------------------------------------------------------------------

async def apply_stop(ctx: Ctx, stop_snapshot: StopSnapshot, cancelled: StopCancelledV1 | None = None) -> None:
    """Keep the stop read model; a cancelled stop's replays that are not public yet are withdrawn."""
    stop = StopView.from_snapshot(stop_snapshot)
    known = await ctx.store.stop(stop.stop_id)
    if known is not None and known.sequence > stop.sequence:
        return  # an older version of the stop than the one we hold
    if known != stop:
        await ctx.store.save_stop(stop)
    if cancelled is None:
        return
    reason = f"stop_cancelled: {cancelled.reason}" if cancelled.reason else "stop_cancelled"
    for replay in await ctx.store.replays_of_stop(stop.stop_id, ["draft", "scheduled"]):
        if replay.publication == "scheduled":
            await ctx.tx.cancel_timer(publish_timer_id(replay.id))
        replay.withdraw(reason, ctx.now)
        await ctx.store.save_replay(replay)
        _emit(ctx, ReplayUnpublishedV1, replay, stop, reason=reason)


async def apply_session(ctx: Ctx, session_snapshot: SessionSnapshot) -> None:
    session = SessionView.from_snapshot(session_snapshot)
    known = await ctx.store.session(session.session_id)
    if known == session:
        return
    await ctx.store.save_session(session)
    if known is not None and known.kind != session.kind:
        for replay in await ctx.store.replays_of_session(session.session_id):
            replay.session_kind = session.kind
            await ctx.store.save_replay(replay)


async def remove_session(ctx: Ctx, session_id: str) -> None:
    """The replay stays with its stop; its session kind is kept so the catalogue filter still finds it."""
    await ctx.store.delete_session(session_id)
    for replay in await ctx.store.replays_of_session(session_id):
        replay.session_id = None
        replay.updated_at = ctx.now
        await ctx.store.save_replay(replay)
