"""MongoDB helpers on PyMongo's native asyncio API (the successor of Motor).

All driver calls of a service stay in its repository module and here.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError, ServerSelectionTimeoutError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

T = TypeVar("T")

TRANSIENT_LABEL = "TransientTransactionError"
UNKNOWN_COMMIT_LABEL = "UnknownTransactionCommitResult"


def make_client(url: str, *, app_name: str, timeout_ms: int = 5000, **options: Any) -> AsyncMongoClient:
    """A client with bounded timeouts, so an outage surfaces as an error instead of a hang."""
    return AsyncMongoClient(
        url,
        appname=app_name,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        retryWrites=True,
        **options,
    )


def is_unavailable(exc: BaseException) -> bool:
    """The database could not be reached: a reason to retry later, never a reason to drop work."""
    return isinstance(exc, (ConnectionFailure, ServerSelectionTimeoutError))


def is_transient(exc: BaseException) -> bool:
    if is_unavailable(exc):
        return True
    return isinstance(exc, PyMongoError) and (
        exc.has_error_label(TRANSIENT_LABEL) or (isinstance(exc, OperationFailure) and exc.code in (112, 251))
    )


async def run_in_transaction(
    client: AsyncMongoClient,
    work: Callable[[AsyncClientSession], Awaitable[T]],
    *,
    max_attempts: int = 12,
    base_delay: float = 0.005,
) -> T:
    """Run ``work(session)`` in one transaction, retrying it whole on transient errors.

    Write conflicts (two sign-ups taking the last place) surface as
    TransientTransactionError; retrying with jittered backoff is the documented
    way to resolve them. Any other error aborts and propagates.
    """
    attempt = 0
    async with client.start_session() as session:
        while True:
            attempt += 1
            await session.start_transaction(
                read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
            )
            try:
                result = await work(session)
                await _commit(session)
                return result
            except BaseException as exc:
                if session.in_transaction:
                    try:
                        await session.abort_transaction()
                    except PyMongoError:
                        pass
                if attempt >= max_attempts or not is_transient(exc):
                    raise
                await asyncio.sleep(random.uniform(0, base_delay * 2 ** min(attempt, 8)))


async def _commit(session: AsyncClientSession) -> None:
    for attempt in range(5):
        try:
            await session.commit_transaction()
            return
        except PyMongoError as exc:
            if exc.has_error_label(UNKNOWN_COMMIT_LABEL) and attempt < 4:
                continue
            raise


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: Sequence[tuple[str, int]]
    options: dict[str, Any] = field(default_factory=dict)

    def model(self) -> IndexModel:
        return IndexModel(list(self.keys), **self.options)


async def ensure_indexes(db: AsyncDatabase, specs: Iterable[IndexSpec]) -> None:
    """Create every index a service queries by (idempotent; run at startup)."""
    by_collection: dict[str, list[IndexModel]] = {}
    for spec in specs:
        by_collection.setdefault(spec.collection, []).append(spec.model())
    for name, models in by_collection.items():
        await db[name].create_indexes(models)


async def ping(client: AsyncMongoClient) -> None:
    await client.admin.command("ping")
