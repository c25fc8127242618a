"""Venues stop events made and published the way venues does (tests, bench, local demos).

Registration only learns about stops from venues events, so anything exercising it
without the venues service publishes these itself.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.contracts.base import CloudEventHeaders, Event
from shared.contracts.venues import StopSnapshot, Venue


def stop_snapshot(stop_id: str | None = None, *, status: str = "registration_open", capacity: int = 10,
                  starts_in: timedelta = timedelta(days=30), **overrides: Any) -> StopSnapshot:
    starts_at = (datetime.now(UTC) + starts_in).replace(microsecond=0)
    fields: dict[str, Any] = {
        "stop_id": stop_id or f"stop_{uuid.uuid4().hex[:12]}", "season": 2022, "region": "FR-BRE",
        "territory_id": "terr-quimperle", "territory_name": "Quimperlé Communauté", "city": "Quimperlé",
        "venue": Venue(name="Espace Benoîte Groult"), "date": starts_at.date(), "starts_at": starts_at,
        "ends_at": starts_at + timedelta(hours=8), "theme": "Territoire inclusif et responsable",
        "capacity": capacity, "status": status,
    }
    return StopSnapshot(**{**fields, **overrides})


async def publish(bootstrap: str, *events: Event) -> None:
    """Send events as venues' relay would: JSON body, CloudEvents headers, key = stop id."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            ce = CloudEventHeaders(type=event.TYPE, source="venues", subject=event.subject())
            await producer.send_and_wait(event.TOPIC, value=event.to_json(), key=event.key().encode(),
                                         headers=ce.to_kafka())
    finally:
        await producer.stop()
