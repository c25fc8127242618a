"""MongoDB adapters: the transactional store the use cases write through, and the catalogue queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import IndexSpec
from shared.uow import Tx
from replays.domain import Batch, Replay, SessionView, StopView

REPLAYS, STOPS, SESSIONS, BATCHES = "replays", "stops", "sessions", "batches"

INDEXES = [
    IndexSpec(REPLAYS, [("stop_id", 1), ("publication", 1)]),
    IndexSpec(REPLAYS, [("session_id", 1)]),
    IndexSpec(REPLAYS, [("publication", 1), ("published_at", -1)]),
    IndexSpec(STOPS, [("season", 1), ("region", 1)]),
    IndexSpec(STOPS, [("territory_id", 1)]),
]


def _to_doc(model: Any, id_field: str) -> dict[str, Any]:
    doc = model.model_dump()
    doc["_id"] = doc.pop(id_field)
    return doc


def _replay(doc: dict[str, Any]) -> Replay:
    return Replay.model_validate({**doc, "id": doc["_id"]})


def _stop(doc: dict[str, Any]) -> StopView:
    return StopView.model_validate({**doc, "stop_id": doc["_id"]})


class MongoReplayStore:
    """handlers.ReplayStore on one transaction: every call passes its session."""

    def __init__(self, tx: Tx):
        self._db = tx.db
        self._s = tx.session

    async def replay(self, replay_id: str) -> Replay | None:
        doc = await self._db[REPLAYS].find_one({"_id": replay_id}, session=self._s)
        return _replay(doc) if doc else None

    async def add_replay(self, replay: Replay) -> None:
        await self._db[REPLAYS].insert_one(_to_doc(replay, "id"), session=self._s)

    async def save_replay(self, replay: Replay) -> None:
        await self._db[REPLAYS].replace_one({"_id": replay.id}, _to_doc(replay, "id"), session=self._s)

    async def replays_of_stop(self, stop_id: str, publications: list[str]) -> list[Replay]:
        cursor = self._db[REPLAYS].find({"stop_id": stop_id, "publication": {"$in": publications}}, session=self._s)
        return [_replay(doc) async for doc in cursor]

    async def replays_of_session(self, session_id: str) -> list[Replay]:
        return [_replay(doc) async for doc in self._db[REPLAYS].find({"session_id": session_id}, session=self._s)]

    async def stop(self, stop_id: str) -> StopView | None:
        doc = await self._db[STOPS].find_one({"_id": stop_id}, session=self._s)
        return _stop(doc) if doc else None

    async def save_stop(self, stop: StopView) -> None:
        await self._db[STOPS].replace_one({"_id": stop.stop_id}, _to_doc(stop, "stop_id"), upsert=True,
                                          session=self._s)

    async def session(self, session_id: str) -> SessionView | None:
        doc = await self._db[SESSIONS].find_one({"_id": session_id}, session=self._s)
        return SessionView.model_validate({**doc, "session_id": doc["_id"]}) if doc else None

    async def save_session(self, session: SessionView) -> None:
        await self._db[SESSIONS].replace_one({"_id": session.session_id}, _to_doc(session, "session_id"),
                                             upsert=True, session=self._s)

    async def delete_session(self, session_id: str) -> None:
        await self._db[SESSIONS].delete_one({"_id": session_id}, session=self._s)

    async def open_batch(self, stop_id: str) -> Batch | None:
        doc = await self._db[BATCHES].find_one({"_id": stop_id}, session=self._s)
        return Batch(doc["batch_id"], doc["opened_at"]) if doc else None

    async def save_batch(self, stop_id: str, batch: Batch) -> None:
        await self._db[BATCHES].replace_one(
            {"_id": stop_id}, {"_id": stop_id, "batch_id": batch.batch_id, "opened_at": batch.opened_at},
            upsert=True, session=self._s,
        )


@dataclass(frozen=True)
class CatalogueQuery:
    season: int | None = None
    region: str | None = None
    stop_id: str | None = None
    session_kind: str | None = None
    publication: str = "published"
    territory_id: str | None = None  # set for a host looking at unpublished replays: only its own stops


class Catalogue:
    """Read-only queries outside any transaction."""

    def __init__(self, db: AsyncDatabase):
        self._db = db

    async def search(self, query: CatalogueQuery, *, page: int, page_size: int) -> tuple[list[Replay], int]:
        where: dict[str, Any] = {"publication": query.publication}
        if query.session_kind:
            where["session_kind"] = query.session_kind
        stop_where = {k: v for k, v in (("season", query.season), ("region", query.region),
                                        ("territory_id", query.territory_id)) if v is not None}
        stop_ids: set[str] | None = None
        if stop_where:
            stop_ids = {doc["_id"] async for doc in self._db[STOPS].find(stop_where, projection={"_id": 1})}
        if query.stop_id:
            stop_ids = {query.stop_id} if stop_ids is None else stop_ids & {query.stop_id}
        if stop_ids is not None:
            where["stop_id"] = {"$in": sorted(stop_ids)}
        total = await self._db[REPLAYS].count_documents(where)
        cursor = (self._db[REPLAYS].find(where).sort([("published_at", -1), ("created_at", -1), ("_id", 1)])
                  .skip((page - 1) * page_size).limit(page_size))
        return [_replay(doc) async for doc in cursor], total

    async def replay(self, replay_id: str) -> Replay | None:
        doc = await self._db[REPLAYS].find_one({"_id": replay_id})
        return _replay(doc) if doc else None

    async def stops(self, stop_ids: set[str]) -> dict[str, StopView]:
        cursor = self._db[STOPS].find({"_id": {"$in": sorted(stop_ids)}})
        return {doc["_id"]: _stop(doc) async for doc in cursor}
