"""Service layer with an in-memory store: who may act, which events are recorded (once), timers,
batches, and the reactions to venues' events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from shared.auth import Principal
from shared.contracts.replays import (
    Chapter, ReplayChaptersUpdatedV1, ReplayCreatedV1, ReplayPublishedV1, ReplayRepublishedV1, ReplayScheduledV1,
    ReplayUnpublishedV1, ReplayUnscheduledV1,
)
from shared.contracts.venues import SessionSnapshot, StopCancelledV1, StopSnapshot, Venue
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from replays import handlers
from replays.domain import Batch, Replay, SessionView, Speaker, StopView
from replays.handlers import Ctx

T0 = datetime(2022, 10, 1, 12, 0, tzinfo=UTC)
STAFF = Principal("staff-1", "staff")
HOST = Principal("host-1", "host", territory_id="t1")
OTHER_HOST = Principal("host-2", "host", territory_id="t2")


class FakeStore:
    def __init__(self) -> None:
        self.replays: dict[str, Replay] = {}
        self.stops: dict[str, StopView] = {}
        self.sessions: dict[str, SessionView] = {}
        self.batches: dict[str, Batch] = {}

    async def replay(self, replay_id: str) -> Replay | None:
        found = self.replays.get(replay_id)
        return found.model_copy(deep=True) if found else None

    async def add_replay(self, replay: Replay) -> None:
        assert replay.id not in self.replays
        self.replays[replay.id] = replay.model_copy(deep=True)

    async def save_replay(self, replay: Replay) -> None:
        self.replays[replay.id] = replay.model_copy(deep=True)

    async def replays_of_stop(self, stop_id: str, publications: list[str]) -> list[Replay]:
        return [r.model_copy(deep=True) for r in self.replays.values()
                if r.stop_id == stop_id and r.publication in publications]

    async def replays_of_session(self, session_id: str) -> list[Replay]:
        return [r.model_copy(deep=True) for r in self.replays.values() if r.session_id == session_id]

    async def stop(self, stop_id: str) -> StopView | None:
        return self.stops.get(stop_id)

    async def save_stop(self, stop: StopView) -> None:
        self.stops[stop.stop_id] = stop

    async def session(self, session_id: str) -> SessionView | None:
        return self.sessions.get(session_id)

    async def save_session(self, session: SessionView) -> None:
        self.sessions[session.session_id] = session

    async def delete_session(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)

    async def open_batch(self, stop_id: str) -> Batch | None:
        return self.batches.get(stop_id)

    async def save_batch(self, stop_id: str, batch: Batch) -> None:
        self.batches[stop_id] = batch


class FakeTx:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.timers: dict[str, tuple[str, datetime, dict]] = {}

    def emit(self, event: Any) -> None:
        self.events.append(event)

    async def schedule(self, timer_id: str, kind: str, due_at: datetime, payload: dict) -> None:
        self.timers[timer_id] = (kind, due_at, payload)

    async def cancel_timer(self, timer_id: str) -> None:
        self.timers.pop(timer_id, None)


class World:
    """One store, one outbox, and a clock the test moves."""

    def __init__(self) -> None:
        self.store, self.tx, self.now = FakeStore(), FakeTx(), T0

    def ctx(self) -> Ctx:
        return Ctx(self.store, self.tx, self.now, timedelta(seconds=600))

    def of_type(self, cls: type) -> list[Any]:
        return [e for e in self.tx.events if isinstance(e, cls)]


def stop_snapshot(stop_id: str = "s1", status: str = "held", territory_id: str = "t1", sequence: int = 1) -> StopSnapshot:
    return StopSnapshot(
        stop_id=stop_id, season=2022, region="Bretagne", territory_id=territory_id, city="Rennes",
        venue=Venue(name="Couvent des Jacobins"), date=date(2022, 9, 30), starts_at=T0 - timedelta(days=1),
        ends_at=T0 - timedelta(days=1) + timedelta(hours=8), theme="Mobilités", capacity=300, status=status,
        sequence=sequence,
    )


def session_snapshot(session_id: str = "se1", kind: str = "round_table", stop_id: str = "s1") -> SessionSnapshot:
    return SessionSnapshot(session_id=session_id, stop_id=stop_id, kind=kind, title="Table ronde",
                           starts_at=T0, ends_at=T0 + timedelta(hours=1))


@pytest.fixture
async def world() -> World:
    w = World()
    await handlers.apply_stop(w.ctx(), stop_snapshot())
    await handlers.apply_session(w.ctx(), session_snapshot())
    return w


async def create(w: World, principal: Principal = STAFF, consent: bool = True, **overrides: Any) -> Replay:
    fields = dict(stop_id="s1", session_id="se1", title="Table ronde", description="", provider="youtube",
                  url="https://youtu.be/dQw4w9WgXcQ", duration_s=3600,
                  speakers=[Speaker(name="Jane Doe", recording_consent=consent)])
    fields.update(overrides)
    replay, _ = await handlers.create_replay(w.ctx(), principal, **fields)
    return replay


async def ready_replay(w: World, **overrides: Any) -> Replay:
    replay = await create(w, **overrides)
    await handlers.mark_ready(w.ctx(), STAFF, replay.id)
    return replay


# -- creation and authorisation ---------------------------------------------------------------

async def test_create_takes_the_session_kind_and_records_the_event(world):
    replay = await create(world, principal=HOST)
    assert (replay.processing, replay.publication, replay.session_kind) == ("pending", "draft", "round_table")
    [event] = world.of_type(ReplayCreatedV1)
    assert event.key() == "s1" and event.replay.city == "Rennes" and event.replay.season == 2022


@pytest.mark.parametrize(("principal", "allowed"), [(STAFF, True), (HOST, True), (OTHER_HOST, False)])
async def test_only_the_stops_host_or_staff_manage_its_replays(world, principal, allowed):
    replay = await create(world)
    actions = [
        lambda: handlers.create_replay(world.ctx(), principal, stop_id="s1", session_id=None, title="t",
                                       description="", provider="vimeo", url="https://vimeo.com/1", duration_s=60,
                                       speakers=[]),
        lambda: handlers.update_replay(world.ctx(), principal, replay.id, {"title": "New"}),
        lambda: handlers.set_chapters(world.ctx(), principal, replay.id, [Chapter(at_s=0, title="Intro")]),
        lambda: handlers.mark_ready(world.ctx(), principal, replay.id),
        lambda: handlers.publish(world.ctx(), principal, replay.id),
        lambda: handlers.unpublish(world.ctx(), principal, replay.id, ""),
    ]
    for action in actions:
        if allowed:
            await action()
        else:
            with pytest.raises(Forbidden):
                await action()
    assert (world.store.replays[replay.id].publication == "unpublished") is allowed


@pytest.mark.parametrize(("overrides", "field"), [
    ({"stop_id": "nope"}, "stop_id"),
    ({"session_id": "nope"}, "session_id"),
    ({"provider": "vimeo"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
])
async def test_bad_input_on_create_names_the_field(world, overrides, field):
    with pytest.raises(Unprocessable) as err:
        await create(world, **overrides)
    assert field in err.value.fields
    assert world.store.replays == {} and world.tx.events == []


async def test_a_session_of_another_stop_is_refused(world):
    await handlers.apply_stop(world.ctx(), stop_snapshot("s2"))
    await handlers.apply_session(world.ctx(), session_snapshot("se2", stop_id="s2"))
    with pytest.raises(Unprocessable) as err:
        await create(world, session_id="se2")
    assert "session_id" in err.value.fields


async def test_unknown_replay_is_404(world):
    with pytest.raises(NotFound):
        await handlers.publish(world.ctx(), STAFF, "missing")


# -- publication ----------------------------------------------------------------------------------

async def test_publication_is_refused_with_every_reason(world):
    await handlers.apply_stop(world.ctx(), stop_snapshot(status="registration_closed", sequence=2))
    replay = await create(world, consent=False)
    with pytest.raises(Conflict) as err:
        await handlers.publish(world.ctx(), HOST, replay.id)
    assert err.value.extra["reasons"] == ["not_ready", "speaker_consent_missing:Jane Doe", "stop_not_held"]
    assert world.of_type(ReplayPublishedV1) == []


async def test_published_once_then_republished_never_published_again(world):
    replay = await ready_replay(world)
    await handlers.publish(world.ctx(), HOST, replay.id)
    await handlers.publish(world.ctx(), HOST, replay.id)  # the same request again
    assert len(world.of_type(ReplayPublishedV1)) == 1
    world.now += timedelta(days=1)
    await handlers.unpublish(world.ctx(), HOST, replay.id, "wrong video")
    await handlers.publish(world.ctx(), HOST, replay.id)
    await handlers.unpublish(world.ctx(), HOST, replay.id, "")
    await handlers.publish(world.ctx(), HOST, replay.id)
    assert len(world.of_type(ReplayPublishedV1)) == 1
    assert len(world.of_type(ReplayRepublishedV1)) == 2
    assert [e.reason for e in world.of_type(ReplayUnpublishedV1)] == ["wrong video", ""]
    saved = world.store.replays[replay.id]
    assert saved.first_published_at == T0 and saved.published_at == T0 + timedelta(days=1)


async def test_replays_of_a_stop_published_together_share_a_batch(world):
    a, b, c = [await ready_replay(world) for _ in range(3)]
    await handlers.publish(world.ctx(), STAFF, a.id)
    world.now += timedelta(seconds=600)
    await handlers.publish(world.ctx(), STAFF, b.id)
    world.now += timedelta(seconds=1)
    await handlers.publish(world.ctx(), STAFF, c.id)
    batches = [e.batch_id for e in world.of_type(ReplayPublishedV1)]
    assert batches[0] == batches[1] != batches[2]


# -- scheduling and the timer ------------------------------------------------------------------

async def test_schedule_plans_one_timer_and_fires_once(world):
    replay = await ready_replay(world)
    timer_id = handlers.publish_timer_id(replay.id)
    await handlers.schedule(world.ctx(), HOST, replay.id, T0 + timedelta(hours=1))
    await handlers.schedule(world.ctx(), HOST, replay.id, T0 + timedelta(hours=2))  # re-planned, not doubled
    assert world.tx.timers == {timer_id: (handlers.PUBLISH_TIMER, T0 + timedelta(hours=2), {"replay_id": replay.id})}
    assert len(world.of_type(ReplayScheduledV1)) == 2

    world.now = T0 + timedelta(hours=2)
    await handlers.fire_scheduled_publication(world.ctx(), replay.id)
    await handlers.fire_scheduled_publication(world.ctx(), replay.id)  # a stale second firing
    assert len(world.of_type(ReplayPublishedV1)) == 1
    assert world.store.replays[replay.id].publication == "published"


async def test_rules_failing_at_fire_time_return_the_replay_to_draft_with_reasons(world):
    replay = await ready_replay(world)
    await handlers.schedule(world.ctx(), HOST, replay.id, T0 + timedelta(hours=1))
    await handlers.update_replay(world.ctx(), HOST, replay.id,
                                 {"speakers": [{"name": "Jane Doe", "recording_consent": False}]})
    world.now = T0 + timedelta(hours=1)
    await handlers.fire_scheduled_publication(world.ctx(), replay.id)
    saved = world.store.replays[replay.id]
    assert (saved.publication, saved.refused_reasons) == ("draft", ["speaker_consent_missing:Jane Doe"])
    [event] = world.of_type(ReplayUnscheduledV1)
    assert event.reasons == ["speaker_consent_missing:Jane Doe"]
    assert world.of_type(ReplayPublishedV1) == []


async def test_publishing_a_scheduled_replay_now_cancels_its_timer(world):
    replay = await ready_replay(world)
    await handlers.schedule(world.ctx(), HOST, replay.id, T0 + timedelta(hours=1))
    await handlers.publish(world.ctx(), HOST, replay.id)
    assert world.tx.timers == {}
    await handlers.fire_scheduled_publication(world.ctx(), replay.id)
    assert len(world.of_type(ReplayPublishedV1)) == 1


async def test_unschedule_goes_back_to_draft(world):
    replay = await ready_replay(world)
    await handlers.schedule(world.ctx(), HOST, replay.id, T0 + timedelta(hours=1))
    await handlers.unschedule(world.ctx(), HOST, replay.id)
    assert world.tx.timers == {} and world.store.replays[replay.id].publication == "draft"
    assert world.of_type(ReplayUnscheduledV1)[0].reasons == []


# -- chapters ---------------------------------------------------------------------------------------

async def test_chapters_are_stored_sorted_and_announced_only_when_changed(world):
    replay = await create(world)
    chapters = [Chapter(at_s=900, title="Débat"), Chapter(at_s=0, title="Ouverture")]
    await handlers.set_chapters(world.ctx(), HOST, replay.id, chapters)
    await handlers.set_chapters(world.ctx(), HOST, replay.id, chapters)
    assert [c.at_s for c in world.store.replays[replay.id].chapters] == [0, 900]
    assert len(world.of_type(ReplayChaptersUpdatedV1)) == 1
    with pytest.raises(Unprocessable):
        await handlers.set_chapters(world.ctx(), HOST, replay.id, [Chapter(at_s=3600, title="after the end")])


# -- venues events ------------------------------------------------------------------------------------

async def test_a_cancelled_stop_withdraws_what_is_not_public_yet(world):
    draft = await create(world)
    scheduled = await ready_replay(world)
    published = await ready_replay(world)
    await handlers.schedule(world.ctx(), HOST, scheduled.id, T0 + timedelta(days=1))
    await handlers.publish(world.ctx(), HOST, published.id)
    cancelled = StopCancelledV1(stop_id="s1", stop=stop_snapshot(status="cancelled", sequence=2), reason="storm")
    for _ in range(2):  # the same cancellation delivered twice (with a new event id) changes nothing more
        await handlers.apply_stop(world.ctx(), cancelled.stop, cancelled)
    states = {r.id: (r.publication, r.withdrawn_reason) for r in world.store.replays.values()}
    assert states == {
        draft.id: ("unpublished", "stop_cancelled: storm"),
        scheduled.id: ("unpublished", "stop_cancelled: storm"),
        published.id: ("published", None),
    }
    assert world.tx.timers == {}
    assert sorted(e.replay_id for e in world.of_type(ReplayUnpublishedV1)) == sorted([draft.id, scheduled.id])
    assert world.store.stops["s1"].status == "cancelled"


async def test_an_older_stop_version_does_not_overwrite_a_newer_one(world):
    await handlers.apply_stop(world.ctx(), stop_snapshot(status="held", sequence=5))
    await handlers.apply_stop(world.ctx(), stop_snapshot(status="registration_open", sequence=3))
    assert world.store.stops["s1"].status == "held"


async def test_a_removed_session_leaves_its_replay_on_the_stop_keeping_the_kind(world):
    replay = await create(world)
    await handlers.apply_session(world.ctx(), session_snapshot(kind="debate"))
    assert world.store.replays[replay.id].session_kind == "debate"
    await handlers.remove_session(world.ctx(), "se1")
    saved = world.store.replays[replay.id]
    assert (saved.stop_id, saved.session_id, saved.session_kind) == ("s1", None, "debate")
    assert "se1" not in world.store.sessions
