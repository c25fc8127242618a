"""Replays: the recording of a stop (optionally of one session), its two state machines
and the rules that gate publication. No I/O: the handlers load and save.

Processing:   pending → ready | failed (a new video URL puts it back to pending).
Publication:  draft → scheduled → published → unpublished → published …
              scheduled → draft (unschedule, or the rules failed when the time came);
              draft | scheduled → unpublished when the stop is cancelled (withdrawn).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.replays import Chapter, Processing, Provider, Publication
from shared.contracts.venues import SessionSnapshot, StopSnapshot
from shared.errors import Conflict, Unprocessable
from replays.videos import embed_url

HELD_STATUSES = frozenset({"held", "archived"})
MAX_DURATION_S = 24 * 3600

ProcessingAction = Literal["ready", "fail"]
PublicationAction = Literal["schedule", "unschedule", "publish", "unpublish", "withdraw"]

# (state, action) → next state. An action absent from both tables is refused with 409.
PROCESSING_TRANSITIONS: dict[tuple[str, str], str] = {
    ("pending", "ready"): "ready",
    ("pending", "fail"): "failed",
}
PUBLICATION_TRANSITIONS: dict[tuple[str, str], str] = {
    ("draft", "schedule"): "scheduled",
    ("scheduled", "schedule"): "scheduled",
    ("unpublished", "schedule"): "scheduled",
    ("scheduled", "unschedule"): "draft",
    ("draft", "publish"): "published",
    ("scheduled", "publish"): "published",
    ("unpublished", "publish"): "published",
    ("published", "unpublish"): "unpublished",
    ("draft", "withdraw"): "unpublished",
    ("scheduled", "withdraw"): "unpublished",
}
# Repeating an action that already took effect changes nothing (a retried request, a redelivered event).
PROCESSING_NOOPS = frozenset({("ready", "ready"), ("failed", "fail")})
PUBLICATION_NOOPS = frozenset({
    ("published", "publish"), ("unpublished", "unpublish"), ("draft", "unschedule"),
    ("published", "withdraw"), ("unpublished", "withdraw"),
})


def next_state(machine: Literal["processing", "publication"], current: str, action: str) -> str | None:
    """The state after ``action``, or None when the action is a repeat that changes nothing."""
    table, noops = (
        (PROCESSING_TRANSITIONS, PROCESSING_NOOPS) if machine == "processing"
        else (PUBLICATION_TRANSITIONS, PUBLICATION_NOOPS)
    )
    if (current, action) in noops:
        return None
    try:
        return table[(current, action)]
    except KeyError:
        allowed = sorted(a for (state, a) in table if state == current and a != "withdraw")
        raise Conflict(
            f"cannot {action} a replay whose {machine} is {current}"
            + (f" (possible: {', '.join(allowed)})" if allowed else ""),
            code="invalid_transition", current_state=current, allowed=allowed,
        ) from None


class StopView(BaseModel):
    """What replays keeps of a stop, from venues' events."""

    stop_id: str
    season: int
    region: str
    city: str
    theme: str
    territory_id: str
    status: str
    sequence: int = 0

    @classmethod
    def from_snapshot(cls, stop: StopSnapshot) -> "StopView":
        return cls.model_validate(stop.model_dump(include=set(cls.model_fields)))

    @property
    def held(self) -> bool:
        return self.status in HELD_STATUSES


class SessionView(BaseModel):
    session_id: str
    stop_id: str
    kind: str
    title: str = ""

    @classmethod
    def from_snapshot(cls, session: SessionSnapshot) -> "SessionView":
        return cls.model_validate(session.model_dump(include=set(cls.model_fields)))


class Speaker(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=120)
    recording_consent: bool


@dataclass(frozen=True)
class Batch:
    """Replays of one stop first published close together: notifications send them as one digest."""

    batch_id: str
    opened_at: datetime


def batch_for(open_batch: Batch | None, now: datetime, window: timedelta) -> Batch:
    """The batch a first publication at ``now`` joins: the open one while its window lasts, else a new one."""
    if open_batch is not None and now - open_batch.opened_at <= window:
        return open_batch
    return Batch(uuid.uuid4().hex, now)


def publication_refusals(replay: "Replay", stop: StopView | None) -> list[str]:
    """Machine-readable reasons why ``replay`` may not be published now (empty: it may)."""
    reasons = [] if replay.processing == "ready" else ["not_ready"]
    reasons += [f"speaker_consent_missing:{s.name}" for s in replay.speakers if not s.recording_consent]
    if stop is None or not stop.held:
        reasons.append("stop_not_held")
    return reasons


def ensure_publishable(replay: "Replay", stop: StopView | None) -> None:
    reasons = publication_refusals(replay, stop)
    if reasons:
        raise Conflict(f"the replay cannot be published: {', '.join(reasons)}", code="publication_refused",
                       reasons=reasons)


def checked_chapters(chapters: list[Chapter], duration_s: int) -> list[Chapter]:
    """Chapters sorted by time; 422 for one outside the video or two starting at the same second."""
    problems: dict[str, str] = {}
    seen: set[int] = set()
    for i, chapter in enumerate(chapters):
        if not 0 <= chapter.at_s < duration_s:
            problems[f"chapters.{i}.at_s"] = f"{chapter.at_s}s is outside the video (0 to {duration_s - 1}s)"
        elif chapter.at_s in seen:
            problems[f"chapters.{i}.at_s"] = f"another chapter already starts at {chapter.at_s}s"
        seen.add(chapter.at_s)
    if problems:
        raise Unprocessable("invalid chapters: " + "; ".join(f"{k}: {v}" for k, v in problems.items()),
                            fields=problems)
    return sorted(chapters, key=lambda c: c.at_s)


class Replay(BaseModel):
    id: str
    stop_id: str
    session_id: str | None = None
    # Kept when the session is removed: the recording is still of a round table, a debate…
    session_kind: str | None = None
    title: str
    description: str = ""
    provider: Provider
    url: str
    embed_url: str
    duration_s: int
    speakers: list[Speaker] = Field(default_factory=list)
    chapters: list[Chapter] = Field(default_factory=list)
    processing: Processing = "pending"
    failure_reason: str | None = None
    publication: Publication = "draft"
    publish_at: datetime | None = None
    published_at: datetime | None = None
    first_published_at: datetime | None = None
    batch_id: str | None = None
    withdrawn_reason: str | None = None
    # Why a scheduled publication was refused when its time came (the replay went back to draft).
    refused_reasons: list[str] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime

    @classmethod
    def new(cls, *, stop_id: str, session: SessionView | None, title: str, description: str, provider: Provider,
            url: str, duration_s: int, speakers: list[Speaker], now: datetime) -> "Replay":
        return cls(
            id=uuid.uuid4().hex, stop_id=stop_id, session_id=session.session_id if session else None,
            session_kind=session.kind if session else None, title=title, description=description,
            provider=provider, url=url, embed_url=embed_url(provider, url), duration_s=duration_s,
            speakers=speakers, created_at=now, updated_at=now,
        )

    # -- processing ------------------------------------------------------------------------
    def mark_ready(self, now: datetime) -> bool:
        return self._process("ready", now)

    def mark_failed(self, reason: str, now: datetime) -> bool:
        changed = self._process("fail", now)
        if changed:
            self.failure_reason = reason
        return changed

    def _process(self, action: ProcessingAction, now: datetime) -> bool:
        state = next_state("processing", self.processing, action)
        if state is None:
            return False
        self.processing = state  # type: ignore[assignment]
        self.updated_at = now
        return True

    # -- publication -----------------------------------------------------------------------
    def schedule(self, publish_at: datetime, stop: StopView | None, now: datetime) -> None:
        if publish_at <= now:
            raise Unprocessable("publish_at must be in the future", fields={"publish_at": "must be in the future"})
        self._allowed("schedule")
        ensure_publishable(self, stop)
        self.publication, self.updated_at = "scheduled", now
        self.publish_at = publish_at
        self.refused_reasons = []

    def unschedule(self, now: datetime, reasons: list[str] | None = None) -> bool:
        if not self._allowed("unschedule"):
            return False
        self.publication, self.updated_at = "draft", now
        self.publish_at = None
        self.refused_reasons = reasons or []
        return True

    def publish(self, stop: StopView | None, now: datetime) -> Literal["first", "again"] | None:
        """Publish; says whether this is the replay's first publication ever (None: already published)."""
        if not self._allowed("publish"):
            return None
        ensure_publishable(self, stop)
        first = self.first_published_at is None
        self.publication, self.updated_at = "published", now
        self.published_at = now
        self.first_published_at = self.first_published_at or now
        self.publish_at = None
        self.withdrawn_reason = None
        self.refused_reasons = []
        return "first" if first else "again"

    def unpublish(self, now: datetime) -> bool:
        if not self._allowed("unpublish"):
            return False
        self.publication, self.updated_at = "unpublished", now
        return True

    def withdraw(self, reason: str, now: datetime) -> bool:
        """The stop was cancelled: a replay not yet public will not become public."""
        if not self._allowed("withdraw"):
            return False
        self.publication, self.updated_at = "unpublished", now
        self.publish_at = None
        self.withdrawn_reason = reason
        return True

    def _allowed(self, action: PublicationAction) -> bool:
        """True when ``action`` moves the replay; False when it is a harmless repeat; 409 when refused."""
        return next_state("publication", self.publication, action) is not None

    # -- edits -----------------------------------------------------------------------------
    def change_video(self, provider: Provider, url: str, now: datetime) -> None:
        """A new video must be processed again, so it cannot change under a live or planned publication."""
        if (provider, url) == (self.provider, self.url):
            return
        if self.publication in ("published", "scheduled"):
            raise Conflict(f"the video of a {self.publication} replay cannot change; unpublish or unschedule it first",
                           code="replay_live", fields={"url": "locked while published or scheduled"})
        self.embed_url = embed_url(provider, url)
        self.provider, self.url = provider, url
        self.processing, self.failure_reason = "pending", None
        self.updated_at = now

    def change_duration(self, duration_s: int, now: datetime) -> None:
        beyond = [c.at_s for c in self.chapters if c.at_s >= duration_s]
        if beyond:
            message = f"chapters start at {', '.join(f'{s}s' for s in beyond)}, beyond {duration_s}s; move them first"
            raise Unprocessable(f"invalid duration: {message}", fields={"duration_s": message})
        self.duration_s = duration_s
        self.updated_at = now

    def change_speakers(self, speakers: list[Speaker], now: datetime) -> None:
        missing = [f"speaker_consent_missing:{s.name}" for s in speakers if not s.recording_consent]
        if self.publication == "published" and missing:
            raise Conflict("a published replay needs every speaker's consent; unpublish it first",
                           code="publication_refused", reasons=missing)
        self.speakers = speakers
        self.updated_at = now

    def set_chapters(self, chapters: list[Chapter], now: datetime) -> bool:
        chapters = checked_chapters(chapters, self.duration_s)
        if chapters == self.chapters:
            return False
        self.chapters = chapters
        self.updated_at = now
        return True
