"""Service layer on in-memory fakes: decisions, authorisation, the events each use case commits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from shared.auth import JwtVerifier, Principal, ensure_keypair
from shared.contracts.registration import Occupancy
from shared.contracts.venues import (
    SessionAddedV1,
    SessionUpdatedV1,
    StopAcceptedV1,
    StopCapacityChangedV1,
    StopPostponedV1,
    StopProposedV1,
    StopUpdatedV1,
)
from shared.errors import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from venues.accounts import Passwords
from venues.config import Settings
from venues.handlers import SYSTEM, VenuesService
from venues.memory import MemoryRepository, MemoryState, MemoryUnitOfWork

NOW = datetime(2031, 1, 10, 12, tzinfo=UTC)
DAY = date(2031, 5, 15)
FAST_ARGON2 = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class World:
    def __init__(self, keys: Path):
        self.state = MemoryState()
        self.uow = MemoryUnitOfWork(self.state)
        self.settings = Settings(keys_dir=keys, jwt_public_key_file=keys / "jwt_public.pem")
        private, self.public_key = ensure_keypair(keys)
        self.service = VenuesService(self.uow, lambda tx: MemoryRepository(self.state), settings=self.settings,
                                     signing_key=private.read_bytes(), passwords=Passwords(FAST_ARGON2),
                                     clock=lambda: NOW)

    def events(self, cls=None):
        return [e for e in self.uow.committed if cls is None or isinstance(e, cls)]


@pytest.fixture
async def world(tmp_path) -> World:
    return World(tmp_path)


async def territory(world: World, region: str = "BRE") -> Principal:
    """A territory of ``region`` and the principal of its host."""
    t = await world.service.create_territory(SYSTEM, name=f"Territoire {region}", kind="agglomeration", region=region)
    return Principal(f"host-{region}", "host", t.id, region)


async def propose(world: World, host: Principal, **overrides):
    fields = dict(season=2031, region=host.region, territory_id=host.territory_id, city="Quimperlé",
                  venue={"name": "Espace Benoîte Groult", "lat": 47.87, "lon": -3.55}, date=DAY,
                  starts_at="09:00", ends_at="13:00", theme="Ruralité", capacity=120)
    return await world.service.propose_stop(host, **{**fields, **overrides})


async def test_a_host_proposes_a_stop_for_its_own_territory(world):
    host = await territory(world)
    stop = await propose(world, host)
    assert stop.status == "proposed" and stop.territory_name == "Territoire BRE"
    [event] = world.events(StopProposedV1)
    assert event.key() == stop.id and event.stop.status == "proposed"
    assert event.stop.starts_at.isoformat() == "2031-05-15T09:00:00+02:00"


async def test_a_host_cannot_propose_for_another_territory(world):
    bre, nor = await territory(world, "BRE"), await territory(world, "NOR")
    with pytest.raises(Forbidden):
        await propose(world, nor, territory_id=bre.territory_id, region="BRE")
    assert world.events(StopProposedV1) == []


async def test_the_stop_region_must_be_the_territory_region(world):
    host = await territory(world, "BRE")
    with pytest.raises(Unprocessable) as refused:
        await propose(world, SYSTEM, territory_id=host.territory_id, region="NOR")
    assert "region" in refused.value.fields


async def test_proposal_input_is_checked_before_anything_is_written(world):
    host = await territory(world)
    for bad, field in (({"region": "ZZ"}, "region"), ({"date": date(2030, 12, 1), "season": 2030}, "date"),
                       ({"ends_at": "08:00"}, "ends_at")):
        with pytest.raises(Unprocessable) as refused:
            await propose(world, host, **bad)
        assert field in refused.value.fields
    with pytest.raises(NotFound):
        await propose(world, SYSTEM, territory_id="nope", region="BRE")
    assert world.state.stops == {}


async def test_one_active_stop_per_region_and_season(world):
    host = await territory(world)
    first = await propose(world, host)
    with pytest.raises(Conflict) as refused:
        await propose(world, host, city="Bannalec")
    assert refused.value.code == "region_season_taken" and refused.value.extra["stop_id"] == first.id
    await propose(world, host, season=2032, date=date(2032, 5, 13))  # another season is fine
    await world.service.act(SYSTEM, first.id, "reject", reason="doublon")
    second = await propose(world, host, city="Bannalec")  # a rejected stop frees the region
    assert second.city == "Bannalec"


async def test_a_host_cannot_accept_its_own_stop_and_a_refusal_emits_nothing(world):
    host = await territory(world)
    stop = await propose(world, host)
    with pytest.raises(Forbidden):
        await world.service.act(host, stop.id, "accept")
    with pytest.raises(Conflict) as refused:
        await world.service.act(host, stop.id, "open_registration")
    assert refused.value.extra["current_state"] == "proposed"
    assert refused.value.extra["allowed"] == ["accepted", "rejected"]
    accepted = await world.service.act(SYSTEM, stop.id, "accept")
    opened = await world.service.act(host, stop.id, "open_registration")
    assert (accepted.status, opened.status) == ("accepted", "registration_open")
    assert [type(e).__name__ for e in world.events()][-2:] == ["StopAcceptedV1", "StopRegistrationOpenedV1"]
    assert len(world.events(StopAcceptedV1)) == 1


async def test_capacity_follows_the_occupancy_read_model(world):
    host = await territory(world)
    stop = await propose(world, host)
    await world.service.record_occupancy(None, stop.id, Occupancy(capacity=120, confirmed=80), NOW)  # type: ignore[arg-type]
    # an older event (a replayed dead letter) does not overwrite newer figures
    stale = Occupancy(capacity=120, confirmed=2)
    assert not await world.service.record_occupancy(None, stop.id, stale, NOW - timedelta(minutes=1))  # type: ignore[arg-type]
    with pytest.raises(Conflict) as refused:
        await world.service.edit_stop(host, stop.id, {"capacity": 79})
    assert refused.value.extra == {"capacity": 79, "confirmed": 80}
    await world.service.edit_stop(host, stop.id, {"capacity": 80, "theme": "Ruralité et numérique"})
    [capacity] = world.events(StopCapacityChangedV1)
    [updated] = world.events(StopUpdatedV1)
    assert (capacity.previous_capacity, capacity.stop.capacity) == (120, 80)
    assert updated.changed == ["theme"] and updated.stop.sequence == 0


async def test_postponing_keeps_the_programme_and_reports_what_moved(world):
    host = await territory(world)
    stop = await propose(world, host)
    session = await world.service.add_session(
        host, stop.id, kind="opening", title="Ouverture", starts_at="09:00", ends_at="09:30", room="Salle 1",
        speakers=[{"name": "Ada", "role": "Présidente", "organisation": "Territoire BRE"}])
    await world.service.act(SYSTEM, stop.id, "accept")
    with pytest.raises(Forbidden):
        await world.service.postpone(host, stop.id, date=DAY + timedelta(days=7), starts_at="10:00",
                                     ends_at="14:00")
    moved = await world.service.postpone(SYSTEM, stop.id, date=DAY + timedelta(days=7), starts_at="10:00",
                                         ends_at="14:00")
    assert moved.status == "postponed" and moved.sequence == 1
    [postponed] = world.events(StopPostponedV1)
    assert postponed.previous_date == DAY and postponed.stop.date == DAY + timedelta(days=7)
    [added] = world.events(SessionAddedV1)
    [shifted] = world.events(SessionUpdatedV1)
    assert added.session.session_id == shifted.session.session_id == session.id
    assert shifted.session.starts_at.isoformat() == "2031-05-22T10:00:00+02:00"
    reopened = await world.service.act(host, stop.id, "open_registration")
    assert reopened.status == "registration_open"


async def test_login_issues_a_token_the_other_services_verify(world):
    host = await territory(world)
    await world.service.add_host(SYSTEM, host.territory_id, email="Host-BRE@Example.org",
                                 password="correct horse", name="Hôte")
    answer = await world.service.login("host-bre@example.org ", "correct horse")
    assert answer["role"] == "host" and answer["territory_id"] == host.territory_id
    assert answer["token_type"] == "bearer" and answer["expires_in"] == 3600
    verifier = JwtVerifier(world.public_key, audience="intercotour", issuer="intercotour-venues")
    principal = verifier.verify(answer["access_token"])
    assert (principal.role, principal.territory_id, principal.region) == ("host", host.territory_id, "BRE")
    stored = next(iter(world.state.accounts.values()))
    assert stored.password_hash.startswith("$argon2id$") and "correct horse" not in stored.password_hash


async def test_wrong_credentials_get_one_generic_answer(world):
    await world.service.ensure_staff("admin@example.org", "a-long-password")
    assert not await world.service.ensure_staff("admin@example.org", "another")  # created once
    messages = set()
    for email, password in (("admin@example.org", "wrong"), ("nobody@example.org", "a-long-password")):
        with pytest.raises(Unauthorized) as refused:
            await world.service.login(email, password)
        messages.add(refused.value.detail)
    assert messages == {"wrong email or password"}
    assert (await world.service.login("admin@example.org", "a-long-password"))["role"] == "staff"


async def test_only_staff_manage_territories_and_hosts(world):
    host = await territory(world)
    with pytest.raises(Forbidden):
        await world.service.create_territory(host, name="X", kind="city", region="BRE")
    with pytest.raises(Forbidden):
        await world.service.add_host(host, host.territory_id, email="x@example.org", password="0123456789",
                                     name="X")
    with pytest.raises(Conflict):
        await world.service.create_territory(SYSTEM, name="  territoire   bre ", kind="city", region="BRE")
