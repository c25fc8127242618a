"""Dead letters: kept in the service's ``dead_letters`` collection (listable, replayable)
and published to ``<service>.dlq`` with the original coordinates and the reason in headers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shared.contracts.topics import dlq
from shared.errors import NotFound
from shared.logging import get_logger
from shared.mongo import IndexSpec, is_unavailable

log = get_logger(__name__)

DEAD_LETTERS = "dead_letters"
DEAD_LETTER_INDEXES = [IndexSpec(DEAD_LETTERS, [("created_at", -1)])]
# What a dead letter published to <service>.dlq may carry: well under the producer's 1 MiB request limit.
MAX_DLQ_VALUE_BYTES = 512 * 1024
MAX_DLQ_HEADER_BYTES = 4096


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class DeadLetters:
    def __init__(self, db: AsyncDatabase, producer: Any, service: str):
        self._collection = db[DEAD_LETTERS]
        self._producer = producer
        self.service = service
        self.topic = dlq(service)

    async def record(self, record: RawRecord, reason: str, *, consumer: str) -> str:
        """Store then publish; the id is the record's coordinates, so a redelivery stores it once."""
        dl_id = f"{record.topic}:{record.partition}:{record.offset}"
        doc = {
            "_id": dl_id,
            "consumer": consumer,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key,
            "value": record.value,
            "headers": [[k, v] for k, v in record.headers],
            "reason": reason,
            "status": "dead",
            "created_at": datetime.now(UTC),
        }
        await self._retry_while_unavailable(
            lambda: self._collection.update_one({"_id": dl_id}, {"$setOnInsert": doc}, upsert=True)
        )
        if self._producer is not None:
            # The whole record is in the collection; the topic copy must fit the producer's request limit
            # (a 1.5 MB poison message made send_and_wait raise MessageSizeTooLargeError here).
            value, headers = record.value, [(k, (v or b"")[:MAX_DLQ_HEADER_BYTES]) for k, v in record.headers]
            if len(value) > MAX_DLQ_VALUE_BYTES:
                headers.append(("dlq_value_truncated_from", str(len(value)).encode()))
                value = value[:MAX_DLQ_VALUE_BYTES]
            headers += self._dlq_headers(record, reason, consumer)
            await self._producer.send_and_wait(
                self.topic, value=value, key=record.key.encode()[:MAX_DLQ_HEADER_BYTES] if record.key else None,
                headers=headers,
            )
        return dl_id

    @staticmethod
    def _dlq_headers(record: RawRecord, reason: str, consumer: str) -> list[tuple[str, bytes]]:
        return [
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_consumer", consumer.encode()),
            ("dlq_error", reason.encode()[:4000]),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]

    async def _retry_while_unavailable(self, op: Any) -> Any:
        delay = 0.1
        while True:
            try:
                return await op()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                log.warning("dead_letters.db_unavailable", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def list(self, *, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = {"status": status} if status else {}
        docs = await self._collection.find(query).sort("created_at", -1).limit(limit).to_list()
        return [self.public(d) for d in docs]

    @staticmethod
    def public(doc: dict[str, Any]) -> dict[str, Any]:
        headers = {k: bytes(v).decode("utf-8", "replace") for k, v in doc.get("headers", [])}
        return {
            "id": doc["_id"],
            "consumer": doc["consumer"],
            "topic": doc["topic"],
            "partition": doc["partition"],
            "offset": doc["offset"],
            "key": doc.get("key"),
            "event_type": headers.get("ce_type"),
            "event_id": headers.get("ce_id"),
            "reason": doc["reason"],
            "status": doc["status"],
            "created_at": doc["created_at"],
            "replayed_at": doc.get("replayed_at"),
            "replay_outcome": doc.get("replay_outcome"),
        }

    async def load(self, dl_id: str) -> RawRecord:
        doc = await self._collection.find_one({"_id": dl_id})
        if doc is None:
            raise NotFound(f"dead letter {dl_id} not found")
        return RawRecord(
            topic=doc["topic"],
            partition=doc["partition"],
            offset=doc["offset"],
            key=doc.get("key"),
            value=bytes(doc["value"]),
            headers=[(k, bytes(v)) for k, v in doc["headers"]],
        )

    async def mark_replayed(self, dl_id: str, outcome: str) -> None:
        status = "dead" if outcome == "dead_lettered" else "replayed"
        await self._collection.update_one(
            {"_id": dl_id}, {"$set": {"status": status, "replayed_at": datetime.now(UTC), "replay_outcome": outcome}}
        )
