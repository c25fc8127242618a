"""Published event versions never change silently, and every event follows the conventions."""

from __future__ import annotations

import re

import pytest

from shared.contracts.registry import all_events
from shared.contracts.schemas import differences
from shared.contracts.topics import ALL_TOPICS

TYPE_RE = re.compile(r"^[a-z]+\.[a-z_]+\.[a-z_]+\.v(\d+)$")


def test_committed_snapshots_match_the_code():
    assert differences() == []


@pytest.mark.parametrize("cls", all_events(), ids=lambda c: c.TYPE)
def test_event_conventions(cls):
    match = TYPE_RE.match(cls.TYPE)
    assert match, f"{cls.TYPE} is not <owner>.<aggregate>.<event>.v<N>"
    assert cls.__name__.endswith(f"V{match.group(1)}"), "class name carries the version"
    assert cls.TOPIC in ALL_TOPICS
    assert cls.TYPE.split(".")[0] == cls.TOPIC.split(".")[0], "an owner publishes on its own topics"
    assert cls.model_config.get("frozen") and cls.model_config.get("extra") == "ignore"


def test_event_types_are_unique():
    types = [cls.TYPE for cls in all_events()]
    assert len(types) == len(set(types))
