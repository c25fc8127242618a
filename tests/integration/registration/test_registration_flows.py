"""Service-layer flows on the real local database (no broker): capacity, instant waitlist,
offers and their durable timers, self-service, transfer, check-in and venues reactions.
Handlers are called directly; events are read back from the outbox."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.auth import LinkSigner, Principal
from shared.contracts import venues as v
from shared.errors import Conflict, Forbidden, Gone, NotFound, Unprocessable
from shared.messaging.lease import Lease
from shared.messaging.outbox import OUTBOX
from shared.mongo import ensure_indexes, make_client
from shared.testing.infra import unique_db
from shared.timers import TimerRunner
from shared.uow import UOW_INDEXES, UnitOfWork

from registration.handlers import Applicant, Registrations
from registration.hosts import HostDesk
from registration.links import MANAGE, OFFER, Links
from registration.places import NO_SHOW, OFFER_EXPIRY, Places
from registration.reactions import StopReactions
from registration.repository import INDEXES
from registration.samples import stop_snapshot

pytestmark = pytest.mark.integration

STAFF = Principal("staff@x", "staff")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Svc:
    uow: UnitOfWork
    clock: Clock
    signer: LinkSigner
    regs: Registrations
    desk: HostDesk
    reactions: StopReactions
    timers: TimerRunner

    async def venues(self, cls: type[v._StopEvent], snap: v.StopSnapshot, **extra: Any) -> None:
        event = cls(stop_id=snap.stop_id, stop=snap, **extra)
        await self.uow.run(lambda tx: self.reactions.on_stop_event(event, tx))

    async def open_stop(self, capacity: int, **kw: Any) -> v.StopSnapshot:
        snap = stop_snapshot(capacity=capacity, **kw)
        await self.venues(v.StopRegistrationOpenedV1, snap)
        return snap

    async def sign_up(self, stop_id: str, who: str, key: str | None = None) -> dict[str, Any]:
        status, body = await self.regs.sign_up(stop_id, applicant(who), key)
        assert status == 201
        return body

    def token(self, reg_id: str, purpose: str = MANAGE, ttl: int = 3600) -> str:
        return self.signer.sign(purpose, reg_id, ttl)

    async def events(self, type_suffix: str = "") -> list[dict[str, Any]]:
        records = await self.uow.db[OUTBOX].find({}).sort([("created_at", 1), ("seq", 1)]).to_list()
        return [{"type": r["type"], **json.loads(bytes(r["payload"]))} for r in records
                if r["type"].endswith(type_suffix)]

    async def status_of(self, reg_id: str) -> str:
        return (await self.regs.view(reg_id, self.token(reg_id)))["status"]


def applicant(who: str) -> Applicant:
    return Applicant(email=f"{who}@example.org", first_name=who.title(), last_name="Le Goff", organisation="Mairie",
                     profile="elected_official", consents={"contact": True, "photo": False, "recording": True})


@pytest.fixture
async def svc(infra):
    client = make_client(infra.mongo_url, app_name="registration-tests")
    db = client[unique_db("registration_flows")]
    await ensure_indexes(db, [*UOW_INDEXES, *INDEXES])
    uow, clock = UnitOfWork(client, db, source="registration"), Clock()
    signer = LinkSigner("test-secret", namespace="registration")
    links = Links(signer, "http://portal.test", 30)
    places = Places(links)
    reactions = StopReactions(places, no_show_grace_minutes=120, clock=clock)
    timers = TimerRunner(uow, Lease(db, "timers", ttl_seconds=10),
                         {OFFER_EXPIRY: reactions.on_offer_expired, NO_SHOW: reactions.on_no_show_due})
    yield Svc(uow, clock, signer, Registrations(uow, places, links, clock), HostDesk(uow, places, clock),
              reactions, timers)
    await client.close()


async def test_sign_up_confirms_then_waitlists_and_refuses_duplicates_and_closed_stops(svc):
    snap = await svc.open_stop(capacity=1)
    first = await svc.sign_up(snap.stop_id, "anne")
    assert first["status"] == "confirmed" and len(first["check_in_code"]) == 10
    assert first["manage_url"].startswith(f"http://portal.test/r/{first['id']}?token=")
    second = await svc.sign_up(snap.stop_id, "bob")
    assert second["status"] == "waitlisted" and second["waitlist_position"] == 1 and "check_in_code" not in second

    with pytest.raises(Conflict) as dup:
        await svc.sign_up(snap.stop_id, "anne")
    assert dup.value.code == "already_registered"
    with pytest.raises(NotFound):
        await svc.sign_up("no-such-stop", "carl")
    closed = stop_snapshot(status="registration_closed")
    await svc.venues(v.StopRegistrationClosedV1, closed)
    with pytest.raises(Unprocessable) as refused:
        await svc.sign_up(closed.stop_id, "carl")
    assert "registration_closed" in refused.value.detail

    confirmed, waitlisted, sold_out = (await svc.events(".confirmed.v1"), await svc.events(".waitlisted.v1"),
                                       await svc.events("sold_out.v1"))
    assert confirmed[0]["occupancy"] == {"capacity": 1, "confirmed": 1, "offered": 0, "waitlisted": 0}
    assert waitlisted[0]["position"] == 1 and waitlisted[0]["occupancy"]["waitlisted"] == 1
    assert len(sold_out) == 1 and sold_out[0]["stop_id"] == snap.stop_id


async def test_idempotency_key_replays_the_first_answer_and_refuses_another_body(svc):
    snap = await svc.open_stop(capacity=5)
    first = await svc.sign_up(snap.stop_id, "anne", key="k-1")
    assert await svc.sign_up(snap.stop_id, "anne", key="k-1") == first
    with pytest.raises(Unprocessable) as reused:
        await svc.sign_up(snap.stop_id, "bob", key="k-1")
    assert reused.value.code == "idempotency_key_reused"
    assert (await svc.desk.availability(snap.stop_id))["confirmed"] == 1


async def test_a_freed_place_is_offered_at_once_and_accept_decline_expire_move_the_line(svc):
    snap = await svc.open_stop(capacity=1, offer_validity_hours=48)
    anne = await svc.sign_up(snap.stop_id, "anne")
    bob, carl, dina = [await svc.sign_up(snap.stop_id, w) for w in ("bob", "carl", "dina")]

    await svc.regs.cancel(anne["id"], svc.token(anne["id"]))
    [offer] = await svc.events("offer.made.v1")
    assert offer["registration_id"] == bob["id"]
    assert offer["occupancy"] == {"capacity": 1, "confirmed": 0, "offered": 1, "waitlisted": 2}
    assert datetime.fromisoformat(offer["expires_at"]) == svc.clock.now + timedelta(hours=48)
    assert await svc.desk.availability(snap.stop_id) == {
        "capacity": 1, "confirmed": 0, "offered": 1, "waitlisted": 2, "available": 0, "status": "registration_open"}
    assert (await svc.regs.view(carl["id"], svc.token(carl["id"])))["waitlist_position"] == 1

    # Declining passes the place to carl; the offer link works for the offer only.
    offer_token = svc.token(bob["id"], OFFER)
    with pytest.raises(Forbidden):
        await svc.regs.cancel(bob["id"], offer_token)
    await svc.regs.decline_offer(bob["id"], offer_token)
    assert await svc.status_of(carl["id"]) == "offered"

    # carl lets the offer lapse: the durable timer passes it to dina.
    svc.clock.now += timedelta(hours=49)
    assert await svc.timers.fire_due(now=svc.clock.now) == 1
    assert await svc.status_of(carl["id"]) == "cancelled"
    assert await svc.status_of(dina["id"]) == "offered"
    accepted = await svc.regs.accept_offer(dina["id"], svc.token(dina["id"], OFFER))
    assert accepted["status"] == "confirmed" and accepted["check_in_code"]
    assert await svc.regs.accept_offer(dina["id"], svc.token(dina["id"], OFFER)) == accepted  # second click

    types = [e["type"].removeprefix("registration.") for e in await svc.events()]
    assert types[-4:] == ["offer.expired.v1", "offer.made.v1", "offer.accepted.v1",
                          "registration.confirmed.v1"]
    assert await svc.timers.fire_due(now=svc.clock.now + timedelta(days=5)) == 0  # accepted: timer gone
    # A cancelled person is never offered the stop again, even when a place frees up.
    await svc.venues(v.StopCapacityChangedV1, snap.model_copy(update={"capacity": 3}), previous_capacity=1)
    assert {await svc.status_of(r["id"]) for r in (anne, bob, carl)} == {"cancelled"}
    assert (await svc.desk.availability(snap.stop_id))["available"] == 2


async def test_offers_never_outlive_the_start_and_postponement_recaps_them(svc):
    snap = await svc.open_stop(capacity=1, starts_in=timedelta(hours=10))
    anne, bob = await svc.sign_up(snap.stop_id, "anne"), await svc.sign_up(snap.stop_id, "bob")
    await svc.regs.cancel(anne["id"], svc.token(anne["id"]))
    [offer] = await svc.events("offer.made.v1")
    assert datetime.fromisoformat(offer["expires_at"]) == snap.starts_at

    sooner = snap.model_copy(update={"starts_at": snap.starts_at - timedelta(hours=5), "status": "postponed"})
    await svc.venues(v.StopPostponedV1, sooner, previous_date=snap.date, previous_starts_at=snap.starts_at,
                     previous_ends_at=snap.ends_at)
    view = await svc.regs.view(bob["id"], svc.token(bob["id"]))
    assert view["date_changed"] is True and view["offer_expires_at"] == sooner.starts_at
    timer = await svc.uow.db.timers.find_one({"_id": f"offer:{bob['id']}"})
    assert timer["due_at"] == sooner.starts_at


async def test_stop_cancelled_by_venues_cancels_everyone_by_the_organiser(svc):
    snap = await svc.open_stop(capacity=1)
    anne, bob = await svc.sign_up(snap.stop_id, "anne"), await svc.sign_up(snap.stop_id, "bob")
    await svc.venues(v.StopCancelledV1, snap.model_copy(update={"status": "cancelled"}), reason="salle indisponible")
    cancelled = await svc.events("registration.cancelled.v1")
    assert {e["registration_id"] for e in cancelled} == {anne["id"], bob["id"]}
    assert all(e["by"] == "organiser" and e["reason"] == "salle indisponible" for e in cancelled)
    assert (await svc.desk.availability(snap.stop_id))["confirmed"] == 0
    assert await svc.events("offer.made.v1") == []


async def test_transfer_keeps_the_place_until_the_target_confirms(svc):
    here, full, roomy = (await svc.open_stop(capacity=1), await svc.open_stop(capacity=1),
                         await svc.open_stop(capacity=5))
    anne = await svc.sign_up(here.stop_id, "anne")
    await svc.sign_up(here.stop_id, "bob")  # waits for anne's place
    blocker = await svc.sign_up(full.stop_id, "zoe")

    pending = await svc.regs.transfer(anne["id"], svc.token(anne["id"]), full.stop_id)
    assert pending["status"] == "waitlisted" and pending["from_registration_id"] == anne["id"]
    assert await svc.status_of(anne["id"]) == "confirmed"  # still holds her place
    with pytest.raises(Conflict):
        await svc.regs.transfer(anne["id"], svc.token(anne["id"]), roomy.stop_id)

    await svc.regs.cancel(blocker["id"], svc.token(blocker["id"]))
    await svc.regs.accept_offer(pending["id"], svc.token(pending["id"], OFFER))
    assert await svc.status_of(anne["id"]) == "transferred"
    [moved] = await svc.events("transferred.v1")
    assert moved["to_registration_id"] == pending["id"] and moved["occupancy"]["confirmed"] == 0
    offer = (await svc.events("offer.made.v1"))[-1]
    assert offer["stop_id"] == here.stop_id  # bob gets anne's old place at once

    direct = await svc.regs.transfer(pending["id"], svc.token(pending["id"]), roomy.stop_id)
    assert direct["status"] == "confirmed"
    assert await svc.status_of(pending["id"]) == "transferred"


async def test_check_in_outcomes_are_idempotent_per_nonce(svc):
    snap = await svc.open_stop(capacity=1)
    other = await svc.open_stop(capacity=1, territory_id="terr-other")
    anne, bob = await svc.sign_up(snap.stop_id, "anne"), await svc.sign_up(snap.stop_id, "bob")
    elsewhere = await svc.sign_up(other.stop_id, "carl")

    ok = await svc.desk.check_in(STAFF, anne["check_in_code"].lower(), snap.stop_id, "n1")
    assert ok["status"] == "ok" and ok["reason"] is None and ok["registration"]["id"] == anne["id"]
    assert await svc.desk.check_in(STAFF, anne["check_in_code"], snap.stop_id, "n1") == ok
    svc.clock.now += timedelta(minutes=3)
    again = await svc.desk.check_in(STAFF, anne["check_in_code"], snap.stop_id, "n2")
    assert again["reason"] == "already_checked_in" and again["checked_in_at"] == ok["checked_in_at"]
    bob_code = (await svc.uow.db.registrations.find_one({"_id": bob["id"]}))["check_in_code"]
    assert (await svc.desk.check_in(STAFF, bob_code, snap.stop_id, "n3"))["reason"] == "not_confirmed"
    assert (await svc.desk.check_in(STAFF, "ZZZZZZZZZZ", snap.stop_id, "n4"))["reason"] == "unknown_code"
    wrong = await svc.desk.check_in(STAFF, elsewhere["check_in_code"], snap.stop_id, "n5")
    assert wrong["reason"] == "wrong_stop" and wrong["registration"] is None
    host = Principal("host@x", "host", territory_id="terr-other")
    with pytest.raises(Forbidden):
        await svc.desk.check_in(host, anne["check_in_code"], snap.stop_id, "n6")
    assert len(await svc.events("checked_in.v1")) == 1


async def test_held_stop_turns_unchecked_confirmed_into_no_shows_after_the_grace(svc):
    snap = await svc.open_stop(capacity=2)
    anne, bob = await svc.sign_up(snap.stop_id, "anne"), await svc.sign_up(snap.stop_id, "bob")
    await svc.desk.check_in(STAFF, anne["check_in_code"], snap.stop_id, "n1")
    await svc.venues(v.StopHeldV1, snap.model_copy(update={"status": "held"}))
    assert await svc.timers.fire_due(now=svc.clock.now + timedelta(minutes=119)) == 0
    assert await svc.timers.fire_due(now=svc.clock.now + timedelta(minutes=121)) == 1
    assert await svc.status_of(anne["id"]) == "checked_in"
    assert await svc.status_of(bob["id"]) == "no_show"
    assert [e["registration_id"] for e in await svc.events("no_show.v1")] == [bob["id"]]


async def test_links_are_bound_to_one_registration_and_expire(svc):
    snap = await svc.open_stop(capacity=2)
    anne, bob = await svc.sign_up(snap.stop_id, "anne"), await svc.sign_up(snap.stop_id, "bob")
    with pytest.raises(Forbidden):
        await svc.regs.view(anne["id"], svc.token(bob["id"]))
    with pytest.raises(Forbidden):
        await svc.regs.view(anne["id"], svc.token(anne["id"])[:-2] + "xx")
    with pytest.raises(Gone):
        await svc.regs.cancel(anne["id"], svc.token(anne["id"], ttl=-5))
    svg = await svc.regs.qr_code(anne["id"], svc.token(anne["id"]))
    assert svg.startswith("<svg") and "</svg>" in svg


async def test_a_capacity_cut_below_the_confirmed_count_revokes_nobody_and_offers_nothing(svc):
    snap = await svc.open_stop(capacity=3)
    people = [await svc.sign_up(snap.stop_id, w) for w in ("anne", "bob", "carl")]
    await svc.venues(v.StopCapacityChangedV1, snap.model_copy(update={"capacity": 1}), previous_capacity=3)
    late = await svc.sign_up(snap.stop_id, "dina")
    assert late["status"] == "waitlisted"
    await svc.regs.cancel(people[0]["id"], svc.token(people[0]["id"]))  # 2 confirmed > 1 place: no offer
    assert {await svc.status_of(p["id"]) for p in people[1:]} == {"confirmed"}
    assert await svc.status_of(late["id"]) == "waitlisted"
    assert await svc.desk.availability(snap.stop_id) == {
        "capacity": 1, "confirmed": 2, "offered": 0, "waitlisted": 1, "available": 0, "status": "registration_open"}
