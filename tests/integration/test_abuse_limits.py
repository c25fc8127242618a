"""Abuse limits on the public writes: login lockout with backoff (venues), sign-up rate limit
(registration), and the 256 KiB body limit answered 413 by every service."""

from __future__ import annotations

import asyncio
import importlib

import httpx
import pytest

from shared.http import MAX_BODY_BYTES
from shared.testing.eventually import eventually
from shared.testing.http import running_app
from shared.testing.infra import unique_db

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PERSON = {"email": "abuse@example.org", "first_name": "A", "last_name": "B", "organisation": "C",
          "profile": "public_sector_staff", "consents": {"contact": True, "photo": False, "recording": False}}


async def test_login_lockout_backs_off_after_repeated_failures_and_resets_on_success(infra, tmp_path):
    from venues.config import Settings
    from venues.main import create_app

    settings = Settings(mongo_url=infra.mongo_url, mongo_db=unique_db("venues_abuse"),
                        kafka_bootstrap=infra.kafka_bootstrap, keys_dir=tmp_path,
                        jwt_public_key_file=tmp_path / "jwt_public.pem", login_lockout_after=3,
                        login_lockout_base_seconds=1, login_attempts_per_account=1000)
    admin = {"email": "admin@intercotour.local", "password": "intercotour-admin"}
    wrong = {**admin, "password": "guess"}
    async with running_app(create_app(settings)) as client:
        login = lambda body: client.post("/api/v1/auth/login", json=body)  # noqa: E731
        assert [(await login(wrong)).status_code for _ in range(3)] == [401] * 3
        locked = await login(admin)  # even the right password waits out the lock
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
        assert locked.json()["error"] == "too_many_requests"

        async def unlocked() -> bool:
            return (await login(wrong)).status_code == 401

        await eventually(unlocked, timeout=10)  # the 4th failure locks for 2 s (backoff doubles)
        again = await login(admin)
        assert again.status_code == 429 and int(again.headers["Retry-After"]) == 2

        async def logged_in() -> bool:
            return (await login(admin)).status_code == 200

        await eventually(logged_in, timeout=15)
        # Success reset the count: three more failures are needed before the next lock.
        assert [(await login(wrong)).status_code for _ in range(2)] == [401, 401]
        assert (await login(admin)).status_code == 200


async def test_sign_ups_are_rate_limited_per_client_with_retry_after(infra):
    from registration.config import Settings
    from registration.main import create_app

    app = create_app(Settings(service_name=unique_db("registration_abuse"), mongo_url=infra.mongo_url,
                              kafka_bootstrap=infra.kafka_bootstrap, signups_per_minute=3))
    # The limit is checked before anything else: an unknown stop answers 404 until the limit, then 429.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        codes = [(await client.post("/api/v1/stops/nope/registrations", json=PERSON)).status_code for _ in range(4)]
        assert codes[:3] == [404] * 3 and codes[3] == 429
        refused = await client.post("/api/v1/stops/nope/registrations", json=PERSON)
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    await app.state.runtime.client.close()


@pytest.mark.parametrize("service", ["venues", "registration", "replays", "notifications"])
async def test_every_service_refuses_bodies_over_256_kib_with_413(service):
    config, main = importlib.import_module(f"{service}.config"), importlib.import_module(f"{service}.main")
    app = main.create_app(config.Settings(mongo_url="mongodb://127.0.0.1:1/?directConnection=true"))
    body = b'{"x": "' + b"a" * MAX_BODY_BYTES + b'"}'
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answer = await client.post("/api/v1/anything", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"] == "payload_too_large"
    await asyncio.wait_for(app.state.runtime.client.close(), 5)
