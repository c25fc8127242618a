"""Replay domain rules: every transition of both state machines, the publication refusals,
chapters, batches and video URLs per provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.contracts.replays import Chapter
from shared.errors import Conflict, Unprocessable
from replays.domain import (
    PROCESSING_NOOPS, PROCESSING_TRANSITIONS, PUBLICATION_NOOPS, PUBLICATION_TRANSITIONS, Batch, Replay, Speaker,
    StopView, batch_for, checked_chapters, next_state, publication_refusals,
)
from replays.videos import embed_url

NOW = datetime(2022, 10, 1, 12, 0, tzinfo=UTC)
PROCESSING_STATES = ("pending", "ready", "failed")
PUBLICATION_STATES = ("draft", "scheduled", "published", "unpublished")


def stop(status: str = "held") -> StopView:
    return StopView(stop_id="s1", season=2022, region="Bretagne", city="Rennes", theme="Mobilités",
                    territory_id="t1", status=status)


def replay(processing: str = "ready", publication: str = "draft", consent: bool = True, **extra) -> Replay:
    r = Replay.new(stop_id="s1", session=None, title="Plénière", description="", provider="vimeo",
                   url="https://vimeo.com/123", duration_s=3600,
                   speakers=[Speaker(name="Jane Doe", recording_consent=consent)], now=NOW)
    return r.model_copy(update={"processing": processing, "publication": publication, **extra})


# -- the tables themselves, action by action ------------------------------------------------

PROCESSING_CASES = [
    (state, action, PROCESSING_TRANSITIONS.get((state, action), "noop" if (state, action) in PROCESSING_NOOPS else "409"))
    for state in PROCESSING_STATES for action in ("ready", "fail")
]


@pytest.mark.parametrize(("state", "action", "expected"), PROCESSING_CASES)
def test_processing_transitions(state, action, expected):
    r = replay(processing=state)
    do = {"ready": lambda: r.mark_ready(NOW), "fail": lambda: r.mark_failed("codec", NOW)}[action]
    if expected == "409":
        with pytest.raises(Conflict) as err:
            do()
        assert err.value.code == "invalid_transition" and err.value.extra["current_state"] == state
        assert r.processing == state
    else:
        assert do() is (expected != "noop")
        assert r.processing == (state if expected == "noop" else expected)


def test_processing_table_is_the_documented_machine():
    assert PROCESSING_TRANSITIONS == {("pending", "ready"): "ready", ("pending", "fail"): "failed"}


EXPECTED_PUBLICATION = {
    # (state, action): resulting state, "noop" or "409"
    ("draft", "schedule"): "scheduled", ("draft", "unschedule"): "noop", ("draft", "publish"): "published",
    ("draft", "unpublish"): "409", ("draft", "withdraw"): "unpublished",
    ("scheduled", "schedule"): "scheduled", ("scheduled", "unschedule"): "draft",
    ("scheduled", "publish"): "published", ("scheduled", "unpublish"): "409", ("scheduled", "withdraw"): "unpublished",
    ("published", "schedule"): "409", ("published", "unschedule"): "409", ("published", "publish"): "noop",
    ("published", "unpublish"): "unpublished", ("published", "withdraw"): "noop",
    ("unpublished", "schedule"): "scheduled", ("unpublished", "unschedule"): "409",
    ("unpublished", "publish"): "published", ("unpublished", "unpublish"): "noop", ("unpublished", "withdraw"): "noop",
}


def test_publication_tables_match_the_expected_matrix():
    from_tables = {
        key: PUBLICATION_TRANSITIONS.get(key, "noop" if key in PUBLICATION_NOOPS else "409")
        for key in EXPECTED_PUBLICATION
    }
    assert from_tables == EXPECTED_PUBLICATION


@pytest.mark.parametrize(("state", "action"), sorted(EXPECTED_PUBLICATION))
def test_publication_transitions(state, action):
    expected = EXPECTED_PUBLICATION[(state, action)]
    publish_at = NOW + timedelta(days=1) if state == "scheduled" else None
    r = replay(publication=state, publish_at=publish_at,
               first_published_at=NOW - timedelta(days=2) if state in ("published", "unpublished") else None)
    do = {
        "schedule": lambda: r.schedule(NOW + timedelta(hours=2), stop(), NOW),
        "unschedule": lambda: r.unschedule(NOW),
        "publish": lambda: r.publish(stop(), NOW),
        "unpublish": lambda: r.unpublish(NOW),
        "withdraw": lambda: r.withdraw("stop_cancelled", NOW),
    }[action]
    if expected == "409":
        with pytest.raises(Conflict) as err:
            do()
        assert err.value.code == "invalid_transition"
        assert r.publication == state
        return
    result = do()
    assert r.publication == (state if expected == "noop" else expected)
    if expected == "noop":
        assert result in (None, False)


def test_first_publication_is_told_apart_from_a_republication():
    r = replay()
    assert r.publish(stop(), NOW) == "first"
    assert r.first_published_at == NOW
    r.unpublish(NOW + timedelta(hours=1))
    later = NOW + timedelta(days=1)
    assert r.publish(stop(), later) == "again"
    assert r.first_published_at == NOW and r.published_at == later


def test_withdraw_keeps_the_reason_and_drops_the_planned_time():
    r = replay(publication="scheduled", publish_at=NOW + timedelta(days=1))
    assert r.withdraw("stop_cancelled: storm", NOW)
    assert (r.publication, r.publish_at, r.withdrawn_reason) == ("unpublished", None, "stop_cancelled: storm")


# -- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("processing", "consent", "status", "reasons"), [
    ("ready", True, "held", []),
    ("ready", True, "archived", []),
    ("pending", True, "held", ["not_ready"]),
    ("failed", True, "held", ["not_ready"]),
    ("ready", False, "held", ["speaker_consent_missing:Jane Doe"]),
    ("ready", True, "registration_closed", ["stop_not_held"]),
    ("ready", True, "cancelled", ["stop_not_held"]),
    ("pending", False, "accepted", ["not_ready", "speaker_consent_missing:Jane Doe", "stop_not_held"]),
])
def test_publication_refusals(processing, consent, status, reasons):
    r = replay(processing=processing, consent=consent)
    assert publication_refusals(r, stop(status)) == reasons
    if reasons:
        with pytest.raises(Conflict) as err:
            r.publish(stop(status), NOW)
        assert err.value.code == "publication_refused" and err.value.extra["reasons"] == reasons
        assert r.publication == "draft"
        with pytest.raises(Conflict):
            r.schedule(NOW + timedelta(hours=1), stop(status), NOW)
        assert r.publication == "draft"


def test_unknown_stop_is_not_held():
    assert publication_refusals(replay(), None) == ["stop_not_held"]


def test_schedule_in_the_past_names_publish_at():
    with pytest.raises(Unprocessable) as err:
        replay().schedule(NOW - timedelta(seconds=1), stop(), NOW)
    assert "publish_at" in err.value.fields


# -- edits --------------------------------------------------------------------------------------

def test_chapters_are_sorted_and_checked_against_the_duration():
    ok = checked_chapters([Chapter(at_s=600, title="b"), Chapter(at_s=0, title="a")], 3600)
    assert [c.at_s for c in ok] == [0, 600]
    with pytest.raises(Unprocessable) as err:
        checked_chapters([Chapter(at_s=0, title="a"), Chapter(at_s=3600, title="end"), Chapter(at_s=0, title="dup")],
                         3600)
    assert set(err.value.fields) == {"chapters.1.at_s", "chapters.2.at_s"}
    assert "outside the video" in err.value.fields["chapters.1.at_s"]


def test_shrinking_the_video_below_a_chapter_is_refused():
    r = replay()
    r.set_chapters([Chapter(at_s=1800, title="débat")], NOW)
    with pytest.raises(Unprocessable) as err:
        r.change_duration(1200, NOW)
    assert "duration_s" in err.value.fields


def test_a_new_video_goes_back_to_processing_but_not_while_live():
    r = replay(processing="ready")
    r.change_video("youtube", "https://youtu.be/dQw4w9WgXcQ", NOW)
    assert (r.processing, r.embed_url) == ("pending", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ")
    live = replay(publication="published")
    with pytest.raises(Conflict):
        live.change_video("vimeo", "https://vimeo.com/999", NOW)


def test_a_published_replay_keeps_every_speakers_consent():
    live = replay(publication="published")
    with pytest.raises(Conflict) as err:
        live.change_speakers([Speaker(name="Ann", recording_consent=False)], NOW)
    assert err.value.extra["reasons"] == ["speaker_consent_missing:Ann"]
    draft = replay()
    draft.change_speakers([Speaker(name="Ann", recording_consent=False)], NOW)
    assert draft.speakers[0].name == "Ann"


# -- batches -------------------------------------------------------------------------------------

def test_batch_window():
    window = timedelta(minutes=10)
    first = batch_for(None, NOW, window)
    assert first.opened_at == NOW
    assert batch_for(first, NOW + window, window) is first
    later = batch_for(first, NOW + window + timedelta(seconds=1), window)
    assert later.batch_id != first.batch_id and later.opened_at == NOW + window + timedelta(seconds=1)
    assert batch_for(Batch("b", NOW), NOW, timedelta(0)).batch_id == "b"


# -- video URLs ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("provider", "url", "embed"), [
    ("youtube", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=30", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
    ("youtube", "https://youtu.be/dQw4w9WgXcQ", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
    ("youtube", "https://youtube.com/embed/dQw4w9WgXcQ", "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ"),
    ("vimeo", "https://vimeo.com/76979871", "https://player.vimeo.com/video/76979871"),
    ("dailymotion", "https://www.dailymotion.com/video/x8abc12", "https://www.dailymotion.com/embed/video/x8abc12"),
    ("dailymotion", "https://dai.ly/x8abc12", "https://www.dailymotion.com/embed/video/x8abc12"),
    ("peertube", "https://tube.example.org/w/kkGMgK9ZtnKfYAgnEtQxbv",
     "https://tube.example.org/videos/embed/kkGMgK9ZtnKfYAgnEtQxbv"),
    ("peertube", "https://tube.example.org/videos/watch/9c9de5e8-0a1e-484a-b099-e80766180a6d",
     "https://tube.example.org/videos/embed/9c9de5e8-0a1e-484a-b099-e80766180a6d"),
    ("url", "https://media.example.org/replays/rennes.mp4", "https://media.example.org/replays/rennes.mp4"),
])
def test_valid_video_urls(provider, url, embed):
    assert embed_url(provider, url) == embed


@pytest.mark.parametrize(("provider", "url"), [
    ("youtube", "https://vimeo.com/76979871"),
    ("youtube", "https://www.youtube.com/watch?v=short"),
    ("youtube", "https://evil.example/watch?v=dQw4w9WgXcQ"),
    ("youtube", "https://www.youtube.com@evil.example/watch?v=dQw4w9WgXcQ"),
    ("vimeo", "https://vimeo.com/channels/staffpicks"),
    ("dailymotion", "https://www.youtube.com/watch?v=dQw4w9WgXcQ"),
    ("peertube", "https://tube.example.org/videos/watch/not-a-uuid"),
    ("url", "javascript:alert(1)"),
    ("url", "data:text/html;base64,PHNjcmlwdD4="),
    ("url", "http://media.example.org/video.mp4"),
    ("url", "https://media.example.org/a b.mp4"),
    ("url", "https:///no-host"),
    ("youtube", "JAVASCRIPT://www.youtube.com/watch?v=dQw4w9WgXcQ"),
])
def test_invalid_video_urls_name_the_url_field(provider, url):
    with pytest.raises(Unprocessable) as err:
        embed_url(provider, url)
    assert set(err.value.fields) == {"url"}


def test_next_state_reports_what_is_possible():
    with pytest.raises(Conflict) as err:
        next_state("publication", "draft", "unpublish")
    assert err.value.extra["allowed"] == ["publish", "schedule"]
