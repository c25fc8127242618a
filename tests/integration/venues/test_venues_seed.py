"""The demo seed on the real database: both seasons, through the handlers (events in the
outbox), and a second run changes nothing."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient

from shared.testing.infra import unique_db
from venues.config import Settings
from venues.seed import run_seed

pytestmark = pytest.mark.integration


async def test_seed_loads_both_seasons_once(infra, tmp_path):
    settings = Settings(mongo_url=infra.mongo_url, mongo_db=unique_db("venues_seed"), keys_dir=tmp_path)
    first = await run_seed(settings)
    client = AsyncMongoClient(infra.mongo_url, tz_aware=True)
    db = client[settings.mongo_db]
    try:
        stops = await db.stops.find({}).to_list()
        outbox_after_first = await db.outbox.count_documents({})
        second = await run_seed(settings)
        assert second == []
        assert await db.outbox.count_documents({}) == outbox_after_first
        assert await db.stops.count_documents({}) == 18

        demo = datetime.now(UTC).year + 1
        by_season = {season: [s for s in stops if s["season"] == season] for season in (2022, demo)}
        assert {s["status"] for s in by_season[2022]} == {"held"}
        assert {s["status"] for s in by_season[demo]} == {"registration_open"}
        assert sorted(s["region"] for s in by_season[2022]) == sorted(
            ["ARA", "BRE", "IDF", "PAC", "HDF", "NAQ", "BFC", "OCC", "NOR"])
        assert {s["region"]: s["capacity"] for s in by_season[demo]}["NOR"] == 3
        assert {s["capacity"] for s in by_season[demo] if s["region"] != "NOR"} == {120}
        assert len({s["date"] for s in by_season[demo]}) == 9
        assert all(3 <= len(s["sessions"]) <= 4 and s["sessions"][0]["speakers"] for s in stops)
        rouen = next(s for s in by_season[2022] if s["region"] == "NOR")
        assert rouen["city"] == "Rouen" and rouen["theme"] == "Le numérique responsable : avenir des territoires ?"

        hosts = await db.accounts.find({"role": "host"}).to_list()
        assert sorted(h["email"] for h in hosts)[0] == "host-ara@intercotour.local" and len(hosts) == 9
        assert await db.territories.count_documents({}) == 9

        types = Counter(r["type"] for r in await db.outbox.find({}).to_list())
        assert types["venues.territory.created.v1"] == 9
        assert types["venues.stop.proposed.v1"] == 18 and types["venues.stop.held.v1"] == 9
        assert types["venues.stop.registration_opened.v1"] == 18  # 2022 opened then closed, demo opened
        assert types["venues.session.added.v1"] == 18 * 4
        assert any(line.startswith("stop 2022 NOR Rouen") for line in first)
    finally:
        await client.close()
