"""A database as text, to assert that a value (an erased address) appears nowhere in it."""

from __future__ import annotations

import json

from pymongo.asynchronous.database import AsyncDatabase


async def dump(db: AsyncDatabase) -> str:
    """Every document of every collection, as one lower-cased text (raw bodies decoded)."""
    parts = []
    for name in await db.list_collection_names():
        for doc in await db[name].find({}).to_list():
            parts.append(json.dumps(doc, default=lambda o: bytes(o).decode("utf-8", "replace")
                                    if isinstance(o, (bytes, bytearray)) else str(o)))
    return "\n".join(parts).lower()
