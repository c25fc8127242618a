"""What an outbox record carries: the CloudEvents headers the relay publishes unchanged."""

from __future__ import annotations

from typing import ClassVar

from shared.contracts.base import CloudEventHeaders, Event
from shared.messaging.outbox import outbox_record


class FiredV1(Event):
    TYPE: ClassVar[str] = "test.timer.fired.v1"
    TOPIC: ClassVar[str] = "test.timers.v1"
    stop_id: str


def headers_of(record: dict) -> CloudEventHeaders:
    return CloudEventHeaders.from_kafka([(name, value) for name, value in record["headers"]])


def test_a_new_chain_is_correlated_by_its_own_id_and_keeps_its_cause():
    record = outbox_record(FiredV1(stop_id="s1"), source="registration", correlation_id=None, causation_id="timer-7")
    ce = headers_of(record)
    assert ce.id == record["_id"] and ce.correlation_id == ce.id
    assert ce.causation_id == "timer-7", "a timer's events name the timer that caused them"
    assert record["key"] == "s1" and record["topic"] == FiredV1.TOPIC


def test_an_existing_chain_keeps_its_correlation_id():
    record = outbox_record(FiredV1(stop_id="s1"), source="registration", correlation_id="corr-1", causation_id="e-1")
    ce = headers_of(record)
    assert (ce.correlation_id, ce.causation_id) == ("corr-1", "e-1")
