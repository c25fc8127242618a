from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import pytest
from pydantic import ValidationError

from shared.contracts.base import CloudEventHeaders, Event, decode_headers


class SampleV1(Event):
    TYPE: ClassVar[str] = "test.sample.created.v1"
    TOPIC: ClassVar[str] = "test.samples.v1"
    stop_id: str
    count: int


def test_events_are_frozen_and_tolerant():
    event = SampleV1.model_validate({"stop_id": "s1", "count": 2, "added_later": "ignored"})
    assert event.key() == "s1"
    with pytest.raises(ValidationError):
        event.count = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        SampleV1.model_validate({"stop_id": "s1"})


def test_cloudevents_headers_round_trip():
    ce = CloudEventHeaders(type=SampleV1.TYPE, source="venues", subject="s1", correlation_id="corr-1",
                           causation_id="cause-1", time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    headers = ce.to_kafka()
    names = [name for name, _ in headers]
    assert {"ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "ce_specversion", "correlation_id"} <= set(names)
    assert decode_headers(headers)["ce_time"] == "2026-01-02T03:04:05Z"
    assert CloudEventHeaders.from_kafka(headers) == ce


def test_correlation_defaults_to_the_event_id():
    ce = CloudEventHeaders(type="t", source="s")
    assert decode_headers(ce.to_kafka())["correlation_id"] == ce.id


def test_missing_or_bad_headers_are_named():
    with pytest.raises(ValueError, match="ce_id, ce_type, ce_source"):
        CloudEventHeaders.from_kafka([])
    bad_time = [("ce_id", b"1"), ("ce_type", b"t"), ("ce_source", b"s"), ("ce_time", b"yesterday")]
    with pytest.raises(ValueError, match="ce_time"):
        CloudEventHeaders.from_kafka(bad_time)
