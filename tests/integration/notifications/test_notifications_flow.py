"""The notifications service on the real local broker and database, with an
in-process mail capture and webhook receiver: each email exactly once under
redelivery, digests, double opt-in, one-click unsubscribe, SMTP and webhook failures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from notifications.config import Settings
from notifications.main import create_app
from shared.auth import ensure_keypair, issue_token
from shared.contracts.base import CloudEventHeaders, Event
from shared.contracts.registration import NoShowV1, RegistrationConfirmedV1, RegistrationWaitlistedV1
from shared.contracts.replays import ReplayPublishedV1, ReplayRepublishedV1, ReplaySnapshot
from shared.contracts.venues import StopRegistrationOpenedV1, StopSnapshot
from shared.localstack.mailcapture import MailCapture
from shared.localstack.processes import free_port
from shared.testing.eventually import eventually
from shared.testing.http import running_app
from shared.testing.infra import unique_db
from shared.testing.mail import MailCaptureClient

pytestmark = pytest.mark.integration

REGION = "NOR"
STOP_ID = f"stop-{uuid.uuid4().hex[:8]}"
STOP = StopSnapshot(
    stop_id=STOP_ID, season=2022, region=REGION, territory_id="t-rouen", city="Rouen",
    venue={"name": "Halle aux Toiles"}, date=date.today() + timedelta(days=30),
    starts_at=datetime.now(UTC) + timedelta(days=30), ends_at=datetime.now(UTC) + timedelta(days=30, hours=8),
    theme="Le numérique responsable", capacity=100, status="registration_open", sequence=1,
)


class Receiver:
    """A partner's webhook endpoint: /ok answers 204, /fail answers 500; every request is kept."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.port = free_port()

        async def handle(request: Request) -> Response:
            self.requests.append((request.url.path, dict(request.headers), await request.body()))
            return Response(status_code=204 if request.url.path == "/ok" else 500)

        app = Starlette(routes=[Route("/{name}", handle, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None))

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="module")
async def env(infra, tmp_path_factory):
    capture = MailCapture(host="127.0.0.1", smtp_port=0, http_port=0)
    await capture.start()
    receiver = Receiver()
    receiver.server.install_signal_handlers = lambda: None
    serving = asyncio.create_task(receiver.server.serve())
    private, public = ensure_keypair(tmp_path_factory.mktemp("keys"))
    settings = Settings(
        mongo_url=infra.mongo_url, mongo_db=unique_db("notif"), kafka_bootstrap=infra.kafka_bootstrap,
        kafka_partitions=3, smtp_port=capture.smtp_port, portal_base_url="http://portal.test",
        relay_poll_seconds=0.2, timer_poll_seconds=0.2, sender_poll_seconds=0.1, digest_window_seconds=1.5,
        email_retry_base_seconds=0.2, email_retry_max_seconds=0.5, email_max_attempts=3,
        webhook_allow_private=True, webhook_retry_schedule=[0.2, 0.2], webhook_disable_after=1,
        jwt_public_key_file=public,
    )
    app = create_app(settings)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
    await producer.start()
    async with running_app(app) as client, MailCaptureClient(capture.http_url) as mail:
        staff = issue_token(private.read_bytes(), subject="staff@intercotour.local", role="staff", territory_id=None,
                            region=None, issuer=settings.jwt_issuer, audience=settings.jwt_audience)
        yield {"client": client, "mail": mail, "producer": producer, "db": app.state.runtime.db,
               "receiver": receiver, "auth": {"Authorization": f"Bearer {staff}"}}
    await producer.stop()
    receiver.server.should_exit = True
    await serving
    await capture.stop()


async def publish(env, event: Event, ce_id: str | None = None) -> str:
    ce = CloudEventHeaders(type=event.TYPE, source="test", **({"id": ce_id} if ce_id else {}))
    await env["producer"].send_and_wait(event.TOPIC, value=event.to_json(), key=event.key().encode(),
                                        headers=ce.to_kafka())
    return ce.id


async def follow(env, email: str, topics: list[str], confirm: bool = True) -> None:
    response = await env["client"].post("/api/v1/followers", json={"email": email, "regions": [REGION], "topics": topics})
    assert response.status_code == 202, response.text
    await env["mail"].wait_for(lambda seen: any(m["To"][0]["Address"] == email for m in seen))
    if confirm:
        [invite] = await env["mail"].messages_to(email)
        text = (await env["mail"].message(invite["ID"]))["Text"]
        link = next(w for w in text.split() if w.startswith("http://portal.test/follow/confirm?token="))
        token = parse_qs(urlsplit(link).query)["token"][0]
        response = await env["client"].get("/api/v1/followers/confirm", params={"token": token})
        assert response.json()["status"] == "confirmed", response.text


def registration(cls, reg_id: str, email: str, **extra):
    return cls(registration_id=reg_id, stop_id=STOP_ID, email=email, first_name="Ada", locale="fr",
               manage_url=f"http://portal.test/registrations/{reg_id}?token=m", **extra)


def replay(replay_id: str, title: str) -> ReplaySnapshot:
    return ReplaySnapshot(replay_id=replay_id, stop_id=STOP_ID, title=title, provider="url",
                          url=f"https://video.example/{replay_id}", embed_url=f"https://video.example/e/{replay_id}",
                          duration_s=1200, processing="ready", publication="published", region=REGION, city="Rouen")


async def test_followers_attendees_and_replay_digest_exactly_once(env):
    mail, client = env["mail"], env["client"]
    bad = await client.post("/api/v1/followers", json={"email": "nope", "regions": ["XXX"], "topics": ["cats"], "role": "x"})
    assert bad.status_code == 422 and {"email", "regions.0", "topics.0", "role"} <= set(bad.json()["fields"])

    await follow(env, "fan@example.org", ["replays", "stops"])
    await follow(env, "lurker@example.org", ["replays", "stops"], confirm=False)
    await publish(env, StopRegistrationOpenedV1(stop_id=STOP_ID, stop=STOP))
    await mail.wait_for(lambda seen: any(m["Subject"].startswith("Inscriptions ouvertes") for m in seen), timeout=20)

    # The same confirmation event delivered twice (same ce_id), plus a no-show who will get the "missed it" variant.
    confirmed = registration(RegistrationConfirmedV1, "reg-1", "ada@example.org", status="confirmed", check_in_code="CHK-1")
    ce_id = await publish(env, confirmed)
    await publish(env, confirmed, ce_id=ce_id)
    await publish(env, registration(NoShowV1, "reg-2", "bob@example.org", status="no_show"))

    batch = uuid.uuid4().hex
    for replay_id, title in (("r1", "Plénière"), ("r2", "Atelier")):
        await publish(env, ReplayPublishedV1(replay_id=replay_id, stop_id=STOP_ID, replay=replay(replay_id, title),
                                             batch_id=batch, published_at=datetime.now(UTC)))
    await publish(env, ReplayRepublishedV1(replay_id="r0", stop_id=STOP_ID, replay=replay("r0", "Ancien"),
                                           published_at=datetime.now(UTC)))

    def digests(seen):
        return [m for m in seen if "replay" in m["Subject"]]

    await mail.wait_for(lambda seen: len(digests(seen)) >= 3, timeout=30)
    await asyncio.sleep(1.0)  # anything duplicated would arrive now
    seen = await mail.messages()
    by_person = {}
    for m in digests(seen):
        by_person.setdefault(m["To"][0]["Address"], []).append(m["Subject"])
    assert by_person == {
        "fan@example.org": ["2 nouveaux replays — IntercoTOUR Rouen"],
        "ada@example.org": ["2 nouveaux replays — IntercoTOUR Rouen"],
        "bob@example.org": ["Vous l'avez manquée ? 2 nouveaux replays — IntercoTOUR Rouen"],
    }
    to_ada = [m["Subject"] for m in seen if m["To"][0]["Address"] == "ada@example.org"]
    assert to_ada.count("Inscription confirmée — IntercoTOUR Rouen") == 1
    assert not [m for m in seen if m["To"][0]["Address"] == "lurker@example.org" and "Confirmez" not in m["Subject"]]
    confirmation = await mail.message(next(m["ID"] for m in seen if m["Subject"].startswith("Inscription confirmée")))
    assert {a["ContentType"] for a in confirmation["Attachments"]} >= {"text/calendar"}


async def test_one_click_unsubscribe_stops_list_mail_but_not_transactional_mail(env):
    mail, client = env["mail"], env["client"]
    # fan follows the region; ada attended the stop (she gets digests without following).
    for person in ("fan@example.org", "ada@example.org"):
        [digest] = [m for m in await mail.messages_to(person) if "replay" in m["Subject"]]
        headers = await mail.headers(digest["ID"])
        assert headers["List-Unsubscribe-Post"] == ["List-Unsubscribe=One-Click"]
        http_link = headers["List-Unsubscribe"][0].split(",")[0].strip().strip("<>")
        assert http_link.startswith("http://127.0.0.1:8004/api/v1/unsubscribe?token="), headers["List-Unsubscribe"]
        token = parse_qs(urlsplit(http_link).query)["token"][0]
        assert (await client.post("/api/v1/unsubscribe", params={"token": token + "x"})).status_code == 403
        response = await client.post("/api/v1/unsubscribe", params={"token": token},
                                     content="List-Unsubscribe=One-Click",
                                     headers={"content-type": "application/x-www-form-urlencoded"})
        assert response.status_code == 200, response.text
    await mail.clear()

    await publish(env, registration(RegistrationWaitlistedV1, "reg-3", "fan@example.org", status="waitlisted", position=4))
    await publish(env, ReplayPublishedV1(replay_id="r3", stop_id=STOP_ID, replay=replay("r3", "Débat"),
                                         batch_id=uuid.uuid4().hex, published_at=datetime.now(UTC)))
    await mail.wait_for(lambda seen: any("replay" in m["Subject"] for m in seen), timeout=30)  # bob's

    async def ada_suppressed():
        items = (await client.get("/api/v1/deliveries", params={"recipient": "ada@example.org", "status": "suppressed"},
                                  headers=env["auth"])).json()["items"]
        assert [d["kind"] for d in items] == ["replay_digest"], items
        return True

    await eventually(ada_suppressed, timeout=10)
    assert [m["Subject"] for m in await mail.messages_to("fan@example.org")] == [
        "Liste d'attente (position 4) — IntercoTOUR Rouen"]
    assert await mail.messages_to("ada@example.org") == []
    fan = (await client.get("/api/v1/deliveries", params={"recipient": "fan@example.org"}, headers=env["auth"])).json()
    assert sum(d["kind"] == "replay_digest" for d in fan["items"]) == 1  # the first digest only


async def test_smtp_4xx_is_retried_and_5xx_suppresses_the_address(env):
    client = env["client"]
    for reg_id, email in (("reg-t", "tempfail-1@example.org"), ("reg-r", "reject-1@example.org")):
        await publish(env, registration(RegistrationWaitlistedV1, reg_id, email, status="waitlisted", position=9))

    async def outcomes():
        items = (await client.get("/api/v1/deliveries", params={"kind": "registration_waitlisted"},
                                  headers=env["auth"])).json()["items"]
        by = {d["recipient"]: d for d in items}
        temp, rejected = by.get("tempfail-1@example.org"), by.get("reject-1@example.org")
        assert temp and temp["status"] == "failed" and temp["attempts"] == 3, temp
        assert rejected and rejected["status"] == "failed" and rejected["attempts"] == 1, rejected
        return temp, rejected

    temp, rejected = await eventually(outcomes, timeout=20)
    assert temp["last_error"].endswith("451 4.3.0 Temporary failure (capture test)")
    assert rejected["last_error"].startswith("550")
    assert await env["db"].suppressions.find_one({"_id": "reject-1@example.org", "reason": "bounced"})
    assert (await client.get("/api/v1/deliveries", headers={})).status_code == 401


async def test_webhooks_are_signed_retried_dead_lettered_and_disabled(env):
    client, receiver = env["client"], env["receiver"]
    refused = await client.post("/api/v1/webhooks", headers=env["auth"],
                                json={"url": "ftp://x", "event_types": ["venues.stop.held.v1"], "regions": [REGION]})
    assert refused.status_code == 422 and "url" in refused.json()["fields"]
    good = (await client.post("/api/v1/webhooks", headers=env["auth"], json={
        "url": receiver.url("ok"), "event_types": ["replays.replay.published.v1"], "regions": [REGION]})).json()
    bad = (await client.post("/api/v1/webhooks", headers=env["auth"], json={
        "url": receiver.url("fail"), "event_types": ["replays.replay.published.v1"], "regions": [REGION],
        "contact_email": "partner@example.org"})).json()
    assert good["secret"].startswith("whsec_")

    await publish(env, ReplayPublishedV1(replay_id="r9", stop_id=STOP_ID, replay=replay("r9", "Clôture"),
                                         batch_id=uuid.uuid4().hex, published_at=datetime.now(UTC)))

    async def settled():
        paths = [path for path, _, _ in receiver.requests]
        assert paths.count("/ok") == 1 and paths.count("/fail") == 3, paths
        return True

    await eventually(settled, timeout=20)
    _, headers, body = next(r for r in receiver.requests if r[0] == "/ok")
    key = base64.b64decode(good["secret"].removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body.decode()}".encode()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert b"ada@example.org" not in body and b'"replay_id":"r9"' in body
    fail_ids = {h["webhook-id"] for p, h, _ in receiver.requests if p == "/fail"}
    assert len(fail_ids) == 1  # retries keep the message id, so the receiver can dedupe

    async def disabled():
        listed = {e["id"]: e for e in (await client.get("/api/v1/webhooks", headers=env["auth"])).json()["items"]}
        assert listed[bad["id"]]["status"] == "disabled" and listed[good["id"]]["status"] == "active"
        return True

    await eventually(disabled, timeout=10)
    await env["mail"].wait_for(lambda seen: any(m["To"][0]["Address"] == "partner@example.org" for m in seen))
    dead = (await client.get("/api/v1/deliveries", params={"recipient": bad["id"]}, headers=env["auth"])).json()["items"]
    assert [(d["status"], d.get("dead_lettered")) for d in dead] == [("failed", True)]


async def test_a_cancelled_stop_sends_each_attendee_one_email_with_a_cancelling_calendar(env):
    from shared.contracts.registration import RegistrationCancelledV1
    from shared.contracts.venues import StopCancelledV1

    mail = env["mail"]
    stop_id = f"stop-{uuid.uuid4().hex[:8]}"
    stop = STOP.model_copy(update={"stop_id": stop_id})
    await publish(env, StopRegistrationOpenedV1(stop_id=stop_id, stop=stop))
    people = {"early@example.org": "reg-early", "late@example.org": "reg-late"}
    for email, reg_id in people.items():
        await publish(env, registration(RegistrationConfirmedV1, reg_id, email, status="confirmed",
                                        check_in_code=f"CHK-{reg_id}").model_copy(update={"stop_id": stop_id}))

    def to(email, seen):
        return [m for m in seen if m["To"][0]["Address"] == email]

    await mail.wait_for(lambda seen: all(to(e, seen) for e in people), timeout=20)
    # Registration may cancel a place before notifications hears of the stop's cancellation…
    await publish(env, registration(RegistrationCancelledV1, "reg-early", "early@example.org", status="cancelled",
                                    by="organiser").model_copy(update={"stop_id": stop_id}))
    await mail.wait_for(lambda seen: len(to("early@example.org", seen)) == 2, timeout=20)
    cancelled = stop.model_copy(update={"status": "cancelled", "sequence": stop.sequence + 1})
    await publish(env, StopCancelledV1(stop_id=stop_id, stop=cancelled, reason="Intempéries"))
    # …or after it: either way one email each.
    await mail.wait_for(lambda seen: len(to("late@example.org", seen)) == 2, timeout=20)
    await publish(env, registration(RegistrationCancelledV1, "reg-late", "late@example.org", status="cancelled",
                                    by="organiser").model_copy(update={"stop_id": stop_id}))
    await asyncio.sleep(2.0)  # a second email would arrive by now
    seen = await mail.messages()
    for email in people:
        mails = to(email, seen)
        assert len(mails) == 2, [m["Subject"] for m in mails]  # confirmed, then one cancellation
        detail = await mail.message(mails[0]["ID"])  # newest first
        assert any(a["ContentType"] == "text/calendar" for a in detail["Attachments"]), email
