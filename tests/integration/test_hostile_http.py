"""Hostile HTTP input: schemathesis against every service's OpenAPI, in-process, on the real
local broker and database (one fresh database per service).

Every operation of venues, registration, replays and notifications gets generated valid and
invalid requests with a staff token (so the deep code paths run, not only the 401s); each answer
must be no 5xx (``not_a_server_error``) and match the declared response schema
(``response_schema_conformance``). The portal is HTML: its public GET pages get the 5xx check only.
Repeatable: derandomised hypothesis, small example budget per operation.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import response_schema_conformance

from shared.auth import ensure_keypair, issue_token
from shared.contracts.topics import dlq
from shared.messaging.broker import ensure_topics
from shared.testing.infra import unique_db

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240),
              # schemathesis' own strategies draw from `random`; derandomize still fixes hypothesis' choices.
              pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")]

CHECKS = [not_a_server_error, response_schema_conformance]
POSITIVE_EXAMPLES, NEGATIVE_EXAMPLES, REAL_EXAMPLES = 15, 10, 10
# Generating the AsyncAPI page is slow and takes no input; /health and /ready take none either.
SKIPPED_PATHS = {"/asyncapi", "/asyncapi.json"}
HYPOTHESIS = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("hostile-keys")
    ensure_keypair(directory)
    return directory


@pytest.fixture(scope="module")
def staff_headers(keys) -> dict[str, str]:
    token = issue_token((keys / "jwt_private.pem").read_bytes(), subject="admin@intercotour.local", role="staff",
                        territory_id=None, region=None, issuer="intercotour-venues", audience="intercotour")
    return {"Authorization": f"Bearer {token}"}


def common(infra, keys: Path, prefix: str) -> dict[str, object]:
    return dict(service_name=unique_db(prefix), mongo_url=infra.mongo_url, kafka_bootstrap=infra.kafka_bootstrap,
                kafka_partitions=1, jwt_public_key_file=keys / "jwt_public.pem", relay_poll_seconds=0.5,
                timer_poll_seconds=0.5, consumer_retries=0, portal_base_url="http://portal.test")


def build_app(name: str, infra, keys: Path):
    settings_kw = common(infra, keys, name)
    if name == "venues":
        from venues.config import Settings
        from venues.main import create_app
        return create_app(Settings(**settings_kw, keys_dir=keys, rate_limits_enabled=False))
    if name == "registration":
        from registration.config import Settings
        from registration.main import create_app
        return create_app(Settings(**settings_kw))
    if name == "replays":
        from replays.config import Settings
        from replays.main import create_app
        return create_app(Settings(**settings_kw))
    from notifications.config import Settings
    from notifications.main import create_app
    async def documentation_address(host: str, port: int) -> list[str]:
        # TEST-NET-1: refused as non-public, so nothing generated here ever reaches the network.
        return ["192.0.2.1"]

    return create_app(Settings(**settings_kw, smtp_port=9, sender_poll_seconds=5), resolver=documentation_address)


def seed(name: str, app, infra, headers: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Real resources, so that generated requests also reach existing stops, replays, registrations:
    (path parameter values, query values)."""
    from registration.samples import publish, stop_snapshot
    from shared.contracts.venues import StopAcceptedV1, StopRegistrationOpenedV1

    client = schemathesis_asgi.get_client(app)

    def ok(response, *codes: int) -> dict:
        assert response.status_code in codes, (response.status_code, response.text)
        return response.json()

    def wait_for(path: str) -> None:
        for _ in range(300):
            if client.get(path, headers=headers).status_code == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"{name}: {path} never appeared")

    if name == "venues":
        territory = ok(client.post("/api/v1/territories", headers=headers, json={
            "name": "Territoire", "kind": "city", "region": "BRE"}), 201)["id"]
        day = date.today() + timedelta(days=60)
        stop = ok(client.post("/api/v1/stops", headers=headers, json={
            "season": day.year, "region": "BRE", "territory_id": territory, "city": "Quimperlé",
            "venue": {"name": "Espace"}, "date": day.isoformat(), "starts_at": "09:00", "ends_at": "17:00",
            "theme": "Mobilités", "capacity": 5}), 201)["id"]
        session = ok(client.post(f"/api/v1/stops/{stop}/sessions", headers=headers, json={
            "kind": "plenary", "title": "Plénière", "starts_at": "10:00", "ends_at": "11:00"}), 201)["id"]
        return {"territory_id": territory, "stop_id": stop, "session_id": session}, {}
    if name == "registration":
        snap = stop_snapshot(capacity=3)
        asyncio.run(publish(infra.kafka_bootstrap, StopRegistrationOpenedV1(stop_id=snap.stop_id, stop=snap)))
        wait_for(f"/api/v1/stops/{snap.stop_id}/availability")
        answer = ok(client.post(f"/api/v1/stops/{snap.stop_id}/registrations", json={
            "email": "lea@example.org", "first_name": "Léa", "last_name": "Morvan", "organisation": "Q",
            "profile": "other", "consents": {"contact": True, "photo": False, "recording": False}}), 201)
        return ({"stop_id": snap.stop_id, "registration_id": answer["id"]},
                {"token": answer["manage_url"].split("token=")[1]})
    if name == "replays":
        snap = stop_snapshot(status="accepted", territory_id="t-hostile")
        asyncio.run(publish(infra.kafka_bootstrap, StopAcceptedV1(stop_id=snap.stop_id, stop=snap)))
        for _ in range(300):
            response = client.post("/api/v1/replays", headers=headers, json={
                "stop_id": snap.stop_id, "title": "Plénière", "provider": "url",
                "url": "https://video.example.org/a.mp4", "duration_s": 600})
            if response.status_code == 201:
                return {"stop_id": snap.stop_id, "replay_id": response.json()["id"]}, {}
            time.sleep(0.1)
        raise AssertionError(f"replays never learnt of the stop: {response.text}")
    return {}, {}


def fuzz_service(name: str, infra, keys: Path, headers: dict[str, str]) -> list[str]:
    """Every operation: positive then negative cases, then positive cases on real resources.
    Returns the failures found (the first per operation and mode)."""
    app = build_app(name, infra, keys)
    asyncio.run(ensure_topics(infra.kafka_bootstrap, [dlq(app.state.runtime.settings.service_name)], 1))
    failures: list[str] = []
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 8, [op.label for op in operations]
        known_path, known_query = seed(name, app, infra, headers)
        real_runs = 0
        for operation in operations:
            if operation.path in SKIPPED_PATHS:
                continue
            runs: list[tuple[str, GenerationMode, int, dict[str, Any]]] = [
                ("positive", GenerationMode.POSITIVE, POSITIVE_EXAMPLES, {})]
            if operation.body or operation.query or operation.headers:
                # Only free-form path strings otherwise: nothing to make invalid.
                runs.append(("negative", GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, {}))
            fixed = {p: known_path[p] for p in re.findall(r"{(\w+)}", operation.path) if p in known_path}
            query = {q.name: known_query[q.name] for q in operation.query if q.name in known_query}
            if fixed and len(fixed) == len(re.findall(r"{(\w+)}", operation.path)):
                runs.append(("real resources", GenerationMode.POSITIVE, REAL_EXAMPLES,
                             {"path_parameters": fixed, **({"query": query} if query else {})}))
            real_runs += len(runs) == 3 or (len(runs) == 2 and runs[-1][0] == "real resources")
            for label, mode, budget, fixed_parts in runs:
                @settings(HYPOTHESIS, max_examples=budget)
                @given(case=operation.as_strategy(generation_mode=mode, **fixed_parts))
                def check(case) -> None:
                    case.call_and_validate(headers=headers, checks=CHECKS)

                try:
                    check()
                except Unsatisfiable:
                    continue  # e.g. a query whose every value is valid: no negative case exists
                except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported together below
                    failures.append(f"{operation.label} [{label}]: {str(exc)[:1500]}")
        if known_path:
            assert real_runs >= 4, f"{name}: only {real_runs} operations were fuzzed on real resources"
    finally:
        # schemathesis ran the app's lifespan in its own event loop: stop the runtime before the infra goes.
        schemathesis_asgi.shutdown_lifespans()
    return failures


@pytest.mark.parametrize("service", ["venues", "registration", "replays", "notifications"])
def test_no_5xx_and_responses_match_the_schema(service, infra, keys, staff_headers):
    failures = fuzz_service(service, infra, keys, staff_headers)
    assert not failures, "\n\n".join(failures)
