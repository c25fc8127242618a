"""One test per user-facing feature, across the services running as processes (HTTP and mail only)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import pytest

from shared.testing.eventually import eventually
from tests.e2e.circuit import Circuit, token_from

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def circuit(local_stack) -> Circuit:
    return Circuit(local_stack.urls)


def address(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.org"


async def test_a_proposed_stop_opens_and_an_attendee_signs_up_gets_mail_and_cancels(circuit):
    staff = await circuit.staff()
    territory_id, host = await circuit.new_host(staff, "CVL")
    stop = await circuit.open_stop(staff, host, territory_id, "CVL", capacity=50)

    email = address("attendee")
    signed = await circuit.sign_up(stop["id"], email.upper())
    assert signed.status_code == 201, signed.text
    registration = signed.json()
    assert registration["status"] == "confirmed"
    assert "/r/" in registration["manage_url"]
    again = await circuit.sign_up(stop["id"], email)
    assert again.status_code == 409, "one active registration per (normalised) email per stop"

    [confirmation] = await circuit.mails_to(email)
    detail = await circuit.message(confirmation["ID"])
    assert any(a["FileName"].endswith(".ics") for a in detail["Attachments"]), "the stop's calendar is attached"
    token = token_from(detail["Text"])

    async with circuit.client("registration") as registration_api:
        cancelled = await registration_api.post(f"/registrations/{registration['id']}/cancel", params={"token": token})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        forged = await registration_api.post(f"/registrations/{registration['id']}/cancel",
                                             params={"token": token[:-2] + "xx"})
        assert forged.status_code == 403
    await circuit.mails_to(email, count=2)
    async with circuit.client("registration") as registration_api:
        availability = (await registration_api.get(f"/stops/{stop['id']}/availability")).json()
    assert availability["confirmed"] == 0 and availability["available"] == 50


async def test_a_freed_place_is_offered_to_the_next_person_at_once(circuit):
    staff = await circuit.staff()
    territory_id, host = await circuit.new_host(staff, "PDL")
    stop = await circuit.open_stop(staff, host, territory_id, "PDL", capacity=1)
    first, second = address("first"), address("second")
    confirmed = (await circuit.sign_up(stop["id"], first)).json()
    waitlisted = (await circuit.sign_up(stop["id"], second)).json()
    assert confirmed["status"] == "confirmed"
    assert waitlisted["status"] == "waitlisted" and waitlisted["waitlist_position"] == 1

    async with circuit.client("registration") as registration_api:
        cancel = await registration_api.post(f"/registrations/{confirmed['id']}/cancel",
                                             params={"token": token_from(confirmed["manage_url"])})
        assert cancel.status_code == 200, cancel.text
        promoted = await registration_api.get(f"/registrations/{waitlisted['id']}",
                                              params={"token": token_from(waitlisted["manage_url"])})
    assert promoted.json()["status"] == "offered", "promotion happens in the cancellation's transaction"

    mails = await circuit.mails_to(second, count=2)
    subjects = " | ".join(m["Subject"] for m in mails)
    assert len(mails) == 2, subjects  # waitlisted, then the offer


async def test_a_cancelled_stop_tells_its_attendees(circuit):
    staff = await circuit.staff()
    territory_id, host = await circuit.new_host(staff, "GES")
    stop = await circuit.open_stop(staff, host, territory_id, "GES", capacity=10)
    email = address("told")
    registration = (await circuit.sign_up(stop["id"], email)).json()
    await circuit.mails_to(email)

    async with circuit.client("venues", host) as venues:
        refused = await venues.post(f"/stops/{stop['id']}/cancel", json={"reason": "Intempéries"})
        assert refused.status_code == 403, "only staff cancel"
    async with circuit.client("venues", staff) as venues:
        cancelled = await venues.post(f"/stops/{stop['id']}/cancel", json={"reason": "Intempéries"})
        assert cancelled.status_code == 200, cancelled.text

    async with circuit.client("registration") as registration_api:
        async def cancelled_by_organiser():
            response = await registration_api.get(f"/registrations/{registration['id']}",
                                                  params={"token": token_from(registration["manage_url"])})
            return response.json()["status"] == "cancelled"

        await eventually(cancelled_by_organiser, timeout=60, interval=0.3)
    await circuit.mails_to(email, count=2)
    await asyncio.sleep(3)  # a second cancellation email would arrive by now
    async with circuit.mail() as mail:
        mails = await mail.messages_to(email)
    assert len(mails) == 2, [m["Subject"] for m in mails]  # the confirmation, then one cancellation
    detail = await circuit.message(mails[0]["ID"])  # newest first
    assert any(a["FileName"].endswith(".ics") for a in detail["Attachments"])


async def test_a_published_replay_reaches_a_confirmed_follower_once(circuit):
    follower = address("viewer")
    async with circuit.client("notifications") as notifications:
        followed = await notifications.post("/followers", json={"email": follower, "regions": ["BRE"],
                                                                "topics": ["replays"]})
        assert followed.status_code == 202, followed.text
        [confirmation] = await circuit.mails_to(follower)
        token = token_from((await circuit.message(confirmation["ID"]))["Text"])
        confirmed = await notifications.get("/followers/confirm", params={"token": token})
        assert confirmed.status_code == 200, confirmed.text

    host = await circuit.login("host-bre@intercotour.local", "intercotour-host")
    async with circuit.client("venues") as venues:
        stops = (await venues.get("/stops", params={"season": 2022, "region": "BRE"})).json()["items"]
    [held] = [s for s in stops if s["status"] == "held"]
    async with circuit.client("replays", host) as replays:
        async def created():
            response = await replays.post("/replays", json={
                "stop_id": held["id"], "title": "Table ronde : la ruralité inclusive",
                "description": "Replay de la table ronde", "provider": "youtube",
                "url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "duration_s": 3600,
                "speakers": [{"name": "Marie Martin", "recording_consent": True}]})
            return response if response.status_code == 201 else None

        replay = (await eventually(created, timeout=60, interval=0.5)).json()
        assert (await replays.post(f"/replays/{replay['id']}/ready")).status_code == 200
        published = await replays.post(f"/replays/{replay['id']}/publish")
        assert published.status_code == 200, published.text
        assert (await replays.post(f"/replays/{replay['id']}/unpublish")).status_code == 200
        assert (await replays.post(f"/replays/{replay['id']}/publish")).status_code == 200

    mails = await circuit.mails_to(follower, count=2)
    await asyncio.sleep(5)  # a second notification would have arrived by now
    async with circuit.mail() as mail:
        final = await mail.messages_to(follower)
    assert len(final) == 2, [m["Subject"] for m in final]  # the confirmation request and one replay mail
    headers = await circuit.mail().headers(mails[0]["ID"])
    assert headers.get("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
