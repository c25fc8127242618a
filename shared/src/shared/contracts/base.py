"""Event model base class and CloudEvents 1.0 binary-mode headers.

Events travel as JSON bodies; their CloudEvents attributes travel as ``ce_*``
Kafka headers so consumers can route and dedupe without parsing the body.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


class Event(BaseModel):
    """Base of every integration event.

    Frozen: an event is a fact. ``extra="ignore"``: a consumer built against an
    older schema keeps reading newer events (tolerant reader).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    TYPE: ClassVar[str] = ""
    TOPIC: ClassVar[str] = ""

    def key(self) -> str:
        """Partition key; events about one stop share its id so they stay in order."""
        return str(getattr(self, "stop_id"))

    def subject(self) -> str | None:
        """The CloudEvents subject: the id of the record the event is about."""
        return None

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


@dataclass(frozen=True)
class CloudEventHeaders:
    """The CloudEvents attributes of one event, as carried in Kafka headers."""

    type: str
    source: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None

    def to_kafka(self) -> list[tuple[str, bytes]]:
        headers = {
            "ce_specversion": SPEC_VERSION,
            "ce_id": self.id,
            "ce_type": self.type,
            "ce_source": self.source,
            "ce_time": self.time.isoformat().replace("+00:00", "Z"),
            "content-type": CONTENT_TYPE,
            "correlation_id": self.correlation_id or self.id,
        }
        if self.subject:
            headers["ce_subject"] = self.subject
        if self.causation_id:
            headers["causation_id"] = self.causation_id
        return [(name, value.encode()) for name, value in headers.items()]

    @classmethod
    def from_kafka(cls, headers: list[tuple[str, bytes]] | dict[str, str]) -> "CloudEventHeaders":
        """Read the attributes back; raises ``ValueError`` naming what is missing."""
        values = decode_headers(headers)
        missing = [name for name in ("ce_id", "ce_type", "ce_source") if not values.get(name)]
        if missing:
            raise ValueError(f"missing CloudEvents header(s): {', '.join(missing)}")
        raw_time = values.get("ce_time")
        try:
            time = datetime.fromisoformat(raw_time.replace("Z", "+00:00")) if raw_time else datetime.now(UTC)
        except ValueError as exc:
            raise ValueError(f"invalid ce_time header: {raw_time!r}") from exc
        return cls(
            type=values["ce_type"],
            source=values["ce_source"],
            id=values["ce_id"],
            time=time,
            subject=values.get("ce_subject"),
            correlation_id=values.get("correlation_id"),
            causation_id=values.get("causation_id"),
        )


def decode_headers(headers: list[tuple[str, bytes]] | dict[str, str] | None) -> dict[str, str]:
    """Kafka headers as a dict of strings (last value wins; undecodable bytes are replaced)."""
    if not headers:
        return {}
    if isinstance(headers, dict):
        return {str(k): v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for k, v in headers.items()}
    return {name: (value or b"").decode("utf-8", "replace") for name, value in headers}


def new_event_id() -> str:
    return str(uuid.uuid4())
