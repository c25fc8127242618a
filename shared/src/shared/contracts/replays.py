"""Events published by replays on ``replays.replays.v1`` (key = stop id).

``ReplayPublishedV1`` is emitted once per replay, ever; a later publication
after an unpublish is ``ReplayRepublishedV1``, which must not re-notify.
Replays of one stop published close together share a ``batch_id`` so
notifications can send one digest.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import topics
from shared.contracts.base import Event

Provider = Literal["youtube", "peertube", "vimeo", "dailymotion", "url"]
Processing = Literal["pending", "ready", "failed"]
Publication = Literal["draft", "scheduled", "published", "unpublished"]


class Chapter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    at_s: int
    title: str


class ReplaySnapshot(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    replay_id: str
    stop_id: str
    session_id: str | None = None
    session_kind: str | None = None
    title: str
    description: str = ""
    provider: Provider
    url: str
    embed_url: str
    duration_s: int
    chapters: list[Chapter] = Field(default_factory=list)
    processing: Processing
    publication: Publication
    publish_at: datetime | None = None
    season: int | None = None
    region: str | None = None
    city: str | None = None
    theme: str | None = None


class _ReplayEvent(Event):
    TOPIC: ClassVar[str] = topics.REPLAYS_REPLAYS
    replay_id: str
    stop_id: str
    replay: ReplaySnapshot

    def subject(self) -> str | None:
        return self.replay_id


class ReplayCreatedV1(_ReplayEvent):
    TYPE: ClassVar[str] = "replays.replay.created.v1"


class ReplayReadyV1(_ReplayEvent):
    TYPE: ClassVar[str] = "replays.replay.ready.v1"


class ReplayFailedV1(_ReplayEvent):
    TYPE: ClassVar[str] = "replays.replay.failed.v1"
    reason: str = ""


class ReplayScheduledV1(_ReplayEvent):
    TYPE: ClassVar[str] = "replays.replay.scheduled.v1"
    publish_at: datetime


class ReplayUnscheduledV1(_ReplayEvent):
    """Back to draft before its time: by hand (no reasons) or because the rules failed when the timer fired."""

    TYPE: ClassVar[str] = "replays.replay.unscheduled.v1"
    reasons: list[str] = Field(default_factory=list)


class ReplayPublishedV1(_ReplayEvent):
    TYPE: ClassVar[str] = "replays.replay.published.v1"
    batch_id: str
    published_at: datetime


class ReplayRepublishedV1(_ReplayEvent):
    """Visible again after an unpublish: informational, never a new notification."""

    TYPE: ClassVar[str] = "replays.replay.republished.v1"
    published_at: datetime


class ReplayUnpublishedV1(_ReplayEvent):
    TYPE: ClassVar[str] = "replays.replay.unpublished.v1"
    reason: str = ""


class ReplayChaptersUpdatedV1(_ReplayEvent):
    TYPE: ClassVar[str] = "replays.replay.chapters_updated.v1"


EVENTS = (
    ReplayCreatedV1, ReplayReadyV1, ReplayFailedV1, ReplayScheduledV1, ReplayUnscheduledV1, ReplayPublishedV1,
    ReplayRepublishedV1, ReplayUnpublishedV1, ReplayChaptersUpdatedV1,
)
