"""RGPD erasure across the running stack: a person signs up and follows with one address,
staff request the erasure, every service confirms, and the address is then found in no
collection of any service database and in no log line of any process."""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
from pymongo import MongoClient

from shared.testing.eventually import eventually
from tests.e2e.circuit import Circuit

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SERVICES = {"venues", "registration", "replays", "notifications"}


def occurrences(mongo_url: str, needle: str) -> list[str]:
    """``db.collection`` of every document holding ``needle`` (case-insensitive), all databases."""
    found, needle = [], needle.lower()
    with MongoClient(mongo_url, directConnection=True) as client:
        for db_name in client.list_database_names():
            if db_name in ("admin", "config", "local"):
                continue
            db = client[db_name]
            for name in db.list_collection_names():
                for doc in db[name].find({}):
                    text = json.dumps(doc, default=lambda o: bytes(o).decode("utf-8", "replace")
                                      if isinstance(o, (bytes, bytearray)) else str(o))
                    if needle in text.lower():
                        found.append(f"{db_name}.{name}:{doc.get('_id')}")
    return found


async def test_after_erasure_the_address_is_in_no_collection_and_no_log_line(local_stack):
    circuit = Circuit(local_stack.urls)
    email = f"Erase-Me-{uuid.uuid4().hex[:8]}@Example.org"
    staff = await circuit.staff()
    territory_id, host = await circuit.new_host(staff, "PDL")
    # A season of its own: other tests of the shared stack hold PDL in theirs.
    stop = await circuit.open_stop(staff, host, territory_id, "PDL", capacity=10, season=date.today().year + 5)
    signed = await circuit.sign_up(stop["id"], email)
    assert signed.status_code == 201, signed.text
    async with circuit.client("notifications") as notifications:
        followed = await notifications.post("/followers", json={"email": email, "regions": ["PDL"],
                                                                "topics": ["replays"], "locale": "fr"})
        assert followed.status_code == 202, followed.text
    await circuit.mails_to(email.lower(), count=2)  # registration confirmed + follow confirmation
    assert occurrences(local_stack.mongo_url, email), "the address was stored before the erasure"

    async with circuit.client("notifications") as anonymous:
        assert (await anonymous.post("/privacy/erasure", json={"email": email})).status_code == 401
    async with circuit.client("notifications", staff) as notifications:
        asked = await notifications.post("/privacy/erasure", json={"email": email})
        assert asked.status_code == 202, asked.text
        request_id = asked.json()["request_id"]

        async def completed():
            status = (await notifications.get(f"/privacy/erasure/{request_id}")).json()
            return status if status["status"] == "completed" else None

        status = await eventually(completed, timeout=60, interval=0.5)
    assert set(status["services"]) >= SERVICES
    assert status["services"]["registration"]["records"] >= 1
    assert status["services"]["notifications"]["records"] >= 1

    assert occurrences(local_stack.mongo_url, email) == []
    logged = [f"{path.name}:{n}" for path in sorted(local_stack.log_dir.glob("*.log"))
              for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
              if email.lower() in line.lower()]
    assert logged == []
    # The registration still counts: one confirmed place, held by a pseudonym.
    async with circuit.client("registration") as registration:
        availability = (await registration.get(f"/stops/{stop['id']}/availability")).json()
    assert availability["confirmed"] == 1
    async with circuit.client("venues", staff) as venues:  # leave the open-stop listings as they were
        assert (await venues.post(f"/stops/{stop['id']}/close-registration")).status_code == 200
