"""Write conflicts that outlast the unit of work's retries are not the message's fault: the consumer
keeps retrying instead of dead-lettering (found by tests/faults: notifications dead-lettered
registration events under load, and their emails were never sent)."""

from __future__ import annotations

import json
import uuid
from typing import ClassVar

import pytest
from pymongo.errors import OperationFailure

from shared.config import BaseServiceSettings
from shared.contracts.base import Event
from shared.messaging.deadletters import RawRecord
from shared.runtime import ServiceRuntime
from shared.testing.infra import unique_db

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


class NoteV1(Event):
    TYPE: ClassVar[str] = "test.conflict.note.v1"
    TOPIC: ClassVar[str] = "test.conflict.notes.v1"
    stop_id: str


async def test_write_conflicts_outlasting_the_uow_retries_are_retried_not_dead_lettered(infra):
    settings = BaseServiceSettings(service_name=unique_db("svc"), mongo_url=infra.mongo_url,
                                   kafka_bootstrap=infra.kafka_bootstrap, consumer_retries=1)
    runtime = ServiceRuntime(settings)
    runtime.consumer._base_delay = 0.01
    runtime.dead_letters._producer = None  # nothing is published: the broker is not needed here

    @runtime.consumer.on(NoteV1)
    async def on_note(event: NoteV1, tx, ce) -> None:
        await tx.db.notes.insert_one({"stop_id": event.stop_id}, session=tx.session)

    real_run = runtime.uow.run
    conflicts = {"left": 5}  # more than consumer_retries + 1: before the fix, a dead letter

    async def conflicting_run(work, **kwargs):
        if conflicts["left"]:
            conflicts["left"] -= 1
            raise OperationFailure("WriteConflict error: this operation conflicted with another operation",
                                   code=112, details={"errorLabels": ["TransientTransactionError"]})
        return await real_run(work, **kwargs)

    runtime.uow.run = conflicting_run
    record = RawRecord(
        topic=NoteV1.TOPIC, partition=0, offset=1, key="s1", value=json.dumps({"stop_id": "s1"}).encode(),
        headers=[("ce_id", uuid.uuid4().hex.encode()), ("ce_type", NoteV1.TYPE.encode()),
                 ("ce_source", b"test"), ("ce_specversion", b"1.0")])
    try:
        assert await runtime.consumer.process(record) == "handled"
        assert await runtime.db.notes.count_documents({}) == 1
        assert await runtime.db.dead_letters.count_documents({}) == 0
    finally:
        await runtime.client.close()
