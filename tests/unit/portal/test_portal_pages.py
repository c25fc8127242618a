"""The portal's pages over in-memory fakes of the four services: what people see and can do."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape
from typing import Any

import httpx
import pytest
import pytest_asyncio

from portal.config import Settings
from portal.fakes import HOST_NOR, STAFF, URLS, FakeBackends
from portal.main import create_app
from shared.testing.http import running_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Site:
    client: httpx.AsyncClient
    fake: FakeBackends

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def post(self, action: str, data: dict[str, Any] | None = None, page: str = "/login") -> httpx.Response:
        found = CSRF.search((await self.get(page)).text)
        assert found, f"no CSRF field on {page}"
        return await self.client.post(action, data={"csrf_token": found.group(1), **(data or {})})

    async def login(self, who: tuple[str, str, str]) -> None:
        response = await self.post("/login", {"email": who[0], "password": who[1]})
        assert response.status_code == 303, text_of(response)


def text_of(response: httpx.Response) -> str:
    """Roughly what a person reads: tags stripped, spaces collapsed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", response.text, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body)))


def field_errors(response: httpx.Response) -> dict[str, str]:
    """Field id → the error shown next to it."""
    found = re.finditer(r'<p class="field-error" id="([\w-]+)-error">(.*?)</p>', response.text, flags=re.S)
    return {m.group(1): re.sub(r"<[^>]+>", "", unescape(m.group(2))).split(":", 1)[-1].strip() for m in found}


@pytest_asyncio.fixture
async def site() -> AsyncIterator[Site]:
    fake = FakeBackends(portal_url="http://testserver")
    app = create_app(Settings(**URLS), transport=httpx.MockTransport(fake))
    async with running_app(app) as client:
        yield Site(client, fake)


SIGN_UP = {"email": "ada@example.fr", "first_name": "Ada", "last_name": "Lovelace", "organisation": "Rouen",
           "profile": "public_sector_staff", "consents[]": ["contact", "photo"]}


async def sign_up(site: Site, stop_id: str, **overrides: Any) -> httpx.Response:
    return await site.post(f"/stops/{stop_id}/register", {**SIGN_UP, **overrides}, page=f"/stops/{stop_id}")


# -- public ---------------------------------------------------------------------------------------------------

async def test_home_lists_public_stops_by_region_with_a_marker_each(site: Site) -> None:
    page = await site.get("/")
    assert page.status_code == 200
    text = text_of(page)
    assert "Le tour 2022" in text and "Normandie" in text and "Rouen" in text and "Nevers" in text
    assert "Château-Thierry" not in text  # a proposal is not public
    assert len(re.findall(r'<circle [^>]*class="marker"', page.text)) == 2
    assert 'href="/stops/rouen"' in page.text


async def test_stop_page_shows_programme_availability_calendar_and_unticked_consents(site: Site) -> None:
    page = await site.get("/stops/rouen")
    text = text_of(page)
    assert "Ouverture" in text and "Claire Martin" in text and "boucle magnétique" in text
    assert re.search(r'data-testid="available">2<', page.text)
    assert 'href="/stops/rouen.ics"' in page.text
    assert 'type="checkbox"' in page.text and " checked" not in page.text
    calendar = await site.get("/stops/rouen.ics")
    assert calendar.headers["content-type"].startswith("text/calendar") and b"BEGIN:VCALENDAR" in calendar.content


async def test_sign_up_errors_sit_next_to_fields_keep_input_and_are_summarised(site: Site) -> None:
    page = await sign_up(site, "rouen", email="not-an-email", first_name="")
    assert page.status_code == 422
    assert field_errors(page) == {"email": "value is not a valid email address", "first_name": "field required"}
    assert 'href="#email"' in page.text and 'href="#first_name"' in page.text  # the summary links to the fields
    assert 'value="not-an-email"' in page.text and 'value="Lovelace"' in page.text
    assert re.search(r'value="photo" checked', page.text) and not re.search(r'value="recording" checked', page.text)
    assert 'aria-invalid="true"' in page.text
    assert site.fake.registrations == {}


async def test_sign_up_sends_consents_and_leads_to_the_manage_page(site: Site) -> None:
    assert 'name="idempotency_key" value="' in (await site.get("/stops/rouen")).text
    page = await sign_up(site, "rouen", idempotency_key="form-key-1")
    assert page.status_code == 303 and page.headers["location"] == "/r/r1?token=tok-r1"
    assert site.fake.idempotency_keys == ["form-key-1"]  # a resubmitted form cannot register twice
    manage = await site.get(page.headers["location"])
    assert "Votre inscription est confirmée" in text_of(manage) and "Confirmée" in text_of(manage)
    assert '<img class="qr" src="/r/r1/qr.svg?token=tok-r1"' in manage.text
    qr = await site.get("/r/r1/qr.svg?token=tok-r1")
    assert qr.headers["content-type"] == "image/svg+xml" and qr.content.startswith(b"<svg")


async def test_full_stop_waitlists_and_a_cancellation_offers_the_place(site: Site) -> None:
    for n in (1, 2, 3):
        await sign_up(site, "rouen", email=f"p{n}@example.fr")
    waiting = await site.get("/r/r3?token=tok-r3")
    assert "En liste d'attente" in text_of(waiting) and "position 1" in text_of(waiting)

    cancelled = await site.post("/r/r1/cancel?token=tok-r1", page="/r/r1?token=tok-r1")
    assert cancelled.status_code == 303
    assert "Votre inscription est annulée" in text_of(await site.get(cancelled.headers["location"]))

    mail = await site.get("/mail/m4")
    assert 'href="http://testserver/r/r3/accept?token=tok-r3"' in mail.text
    offer = await site.get("/r/r3/accept?token=tok-r3")  # the offer email's link: nothing decided yet
    assert "Une place s'est libérée pour vous" in text_of(offer) and "Annuler mon inscription" not in text_of(offer)
    assert site.fake.registrations["r3"]["status"] == "offered"
    accepted = await site.post("/r/r3/accept-offer?token=tok-r3", {"back": "accept"}, page="/r/r3/accept?token=tok-r3")
    assert accepted.headers["location"] == "/r/r3/accept?token=tok-r3"
    assert "Place acceptée" in text_of(await site.get(accepted.headers["location"]))
    assert site.fake.registrations["r3"]["status"] == "confirmed"


async def test_refused_self_service_action_is_explained_on_the_page(site: Site) -> None:
    await sign_up(site, "rouen")
    response = await site.post("/r/r1/accept-offer?token=tok-r1", page="/r/r1?token=tok-r1")
    assert "Action impossible : cannot accept-offer a registration that is confirmed" in text_of(
        await site.get(response.headers["location"]))


async def test_forged_and_expired_links_get_clear_pages(site: Site) -> None:
    await sign_up(site, "rouen")
    forged = await site.get("/r/r1?token=forged")
    assert forged.status_code == 403 and "Accès refusé" in text_of(forged)
    expired = await site.get("/r/r1?token=expired")
    assert expired.status_code == 410 and "Ce lien a expiré" in text_of(expired)


async def test_a_service_down_gives_a_503_page_naming_it(site: Site) -> None:
    site.fake.down.add("venues")
    page = await site.get("/")
    assert page.status_code == 503 and page.headers["retry-after"] == "10"
    assert "Le service des étapes est momentanément indisponible" in text_of(page)
    assert "Traceback" not in page.text and "ConnectError" not in page.text


async def test_stop_page_survives_a_registration_outage_and_the_form_explains_it(site: Site) -> None:
    site.fake.down.add("registration")
    page = await site.get("/stops/rouen")
    assert page.status_code == 200 and "Le service des inscriptions est momentanément indisponible" in text_of(page)
    refused = await sign_up(site, "rouen")
    assert refused.status_code == 422 and 'value="ada@example.fr"' in refused.text
    assert "Le service des inscriptions est momentanément indisponible" in text_of(refused)


async def test_replay_catalogue_filters_and_embeds_players(site: Site) -> None:
    page = await site.get("/replays?region=BFC&session_kind=opening")
    assert re.search(r'<iframe src="https://www.youtube-nocookie.com/embed/abc" title="Lecteur vidéo : '
                     r'Ouverture à Nevers"', page.text)
    assert "Accueil" in text_of(page)
    assert "Aucun replay" in text_of(await site.get("/replays?region=NOR"))
    assert site.fake.calls.count(("GET", "replays/api/v1/replays")) == 2


async def test_english_on_request_and_remembered(site: Site) -> None:
    page = await site.get("/?lang=en")
    assert "The 2022 tour" in text_of(page) and '<html lang="en">' in page.text
    assert "The 2022 tour" in text_of(await site.get("/"))
    assert "Le tour 2022" in text_of(await site.get("/?lang=fr"))


async def test_follow_confirm_preferences_and_unsubscribe(site: Site) -> None:
    invalid = await site.post("/follow", {"email": "viewer@example.fr"}, page="/follow")
    assert invalid.status_code == 422 and field_errors(invalid) == {"regions": "choose at least one region"}

    sent = await site.post("/follow", {"email": "viewer@example.fr", "regions[]": ["NOR"], "topics[]": ["replays"]},
                           page="/follow?region=NOR")
    assert sent.headers["location"] == "/follow/sent"
    assert site.fake.followers["f1"]["regions"] == ["NOR"] and site.fake.followers["f1"]["locale"] == "fr"
    confirmed = await site.get("/follow/confirm?token=f1")
    assert "Abonnement confirmé" in text_of(confirmed) and site.fake.followers["f1"]["confirmed"]

    prefs = await site.get("/preferences?token=f1")
    assert re.search(r'value="NOR" checked', prefs.text)
    saved = await site.post("/preferences?token=f1", {"regions[]": ["NOR", "BRE"], "topics[]": ["stops"]},
                            page="/preferences?token=f1")
    assert saved.status_code == 303 and site.fake.followers["f1"]["regions"] == ["NOR", "BRE"]

    done = await site.post("/unsubscribe?token=f1", page="/unsubscribe?token=f1")
    assert "Vous êtes désabonné·e" in text_of(done) and site.fake.followers["f1"]["unsubscribed"]


# -- hosts and staff ------------------------------------------------------------------------------------------

async def test_host_pages_need_a_login_and_bad_credentials_are_refused(site: Site) -> None:
    redirect = await site.get("/host/stops/rouen/attendees")
    assert redirect.status_code == 303 and redirect.headers["location"] == "/login?next=/host/stops/rouen/attendees"
    refused = await site.post("/login", {"email": HOST_NOR[0], "password": "wrong"})
    assert refused.status_code == 401 and "Adresse ou mot de passe incorrect" in text_of(refused)
    assert f'value="{HOST_NOR[0]}"' in refused.text and "wrong" not in refused.text
    ok = await site.post("/login?next=/host/stops/rouen/attendees", {"email": HOST_NOR[0], "password": HOST_NOR[1]})
    assert ok.headers["location"] == "/host/stops/rouen/attendees"
    evil = await site.post("/login?next=//evil.example/x", {"email": HOST_NOR[0], "password": HOST_NOR[1]})
    assert evil.headers["location"] == "/host"


async def test_host_sees_only_its_territory_and_is_refused_elsewhere(site: Site) -> None:
    await site.login(HOST_NOR)
    home = text_of(await site.get("/host"))
    assert "Rouen" in home and "Nevers" not in home
    other = await site.get("/host/stops/nevers/attendees")
    assert other.status_code == 403 and "Accès refusé" in text_of(other)


async def test_host_proposal_maps_service_errors_to_fields_and_keeps_input(site: Site) -> None:
    await site.login(HOST_NOR)
    form = {"season": "2023", "region": "NOR", "territory_id": "t-bfc", "city": "Caen", "theme": "",
            "venue_name": "", "venue_address": "Port", "venue_lat": "49,18", "venue_lon": "abc",
            "date": "2023-05-10", "starts_at": "09:00", "ends_at": "13:00", "capacity": "80"}
    page = await site.post("/host/stops/new", form, page="/host/stops/new")
    assert page.status_code == 422
    assert field_errors(page) == {"venue_lon": "Nombre attendu"}  # caught before calling venues
    form["venue_lon"] = "-0.36"
    page = await site.post("/host/stops/new", form, page="/host/stops/new")
    assert field_errors(page) == {"theme": "field required", "venue_name": "field required"}
    assert 'href="#venue_name"' in page.text and 'value="Caen"' in page.text

    created = await site.post("/host/stops/new", {**form, "theme": "Sobriété", "venue_name": "Halle"},
                              page="/host/stops/new")
    assert created.status_code == 303
    stop = site.fake.stops[created.headers["location"].rsplit("/", 1)[1]]
    assert stop["territory_id"] == "t-nor"  # a host cannot propose for another territory
    assert stop["venue"]["lat"] == 49.18 and stop["starts_at"] == "2023-05-10T09:00:00+02:00"


async def test_staff_accepts_a_proposal_and_opens_registration(site: Site) -> None:
    await site.login(STAFF)
    overview = await site.get("/staff")
    assert "Propositions à examiner (1)" in text_of(overview) and "Château-Thierry" in text_of(overview)
    accepted = await site.post("/staff/stops/chateau/accept", page="/staff")
    assert "Proposition acceptée" in text_of(await site.get(accepted.headers["location"]))
    await site.post("/staff/stops/chateau/open-registration", page="/staff")
    assert site.fake.stops["chateau"]["status"] == "registration_open"
    again = await site.post("/staff/stops/chateau/accept", page="/staff")
    assert "Action refusée : cannot accept a stop that is registration_open" in text_of(
        await site.get(again.headers["location"]))


async def test_host_edits_the_stop_and_its_sessions(site: Site) -> None:
    await site.login(HOST_NOR)
    page = await site.get("/host/stops/rouen")
    assert 'value="Rouen"' in page.text and 'value="09:00"' in page.text
    session = {"kind": "round_table", "title": "", "starts_at": "10:00", "ends_at": "11:00", "room": "B",
               "speakers": "Jean Dupont ; Élu ; Métropole"}
    refused = await site.post("/host/stops/rouen/sessions", session, page="/host/stops/rouen")
    assert field_errors(refused) == {"new-title": "field required"}
    await site.post("/host/stops/rouen/sessions", {**session, "title": "Table ronde"}, page="/host/stops/rouen")
    added = site.fake.stops["rouen"]["sessions"][-1]
    assert added["speakers"] == [{"name": "Jean Dupont", "role": "Élu", "organisation": "Métropole"}]
    assert added["starts_at"] == "2022-06-14T10:00:00+02:00"
    edit = {"city": "Rouen", "theme": "Nouveau thème", "venue_name": "Halle", "venue_address": "Quai",
            "venue_lat": "49.44", "venue_lon": "1.1", "venue_accessibility": "", "date": "2022-06-14",
            "starts_at": "09:30", "ends_at": "13:00", "capacity": "0"}
    refused = await site.post("/host/stops/rouen", edit, page="/host/stops/rouen")
    assert field_errors(refused)["capacity"] == "must be at least 1"
    await site.post("/host/stops/rouen", {**edit, "capacity": "3"}, page="/host/stops/rouen")
    assert site.fake.stops["rouen"]["theme"] == "Nouveau thème" and site.fake.stops["rouen"]["capacity"] == 3


async def test_attendees_csv_and_check_in_desk(site: Site) -> None:
    await sign_up(site, "rouen")
    await site.login(HOST_NOR)
    listing = text_of(await site.get("/host/stops/rouen/attendees"))
    assert "ada@example.fr" in listing and "Lovelace" in listing
    csv = await site.get("/host/stops/rouen/attendees.csv")
    assert csv.headers["content-type"].startswith("text/csv") and b"ada@example.fr" in csv.content
    assert "attachment" in csv.headers["content-disposition"]

    desk = await site.get("/host/stops/rouen/checkin")
    nonce = re.search(r'name="nonce" value="([^"]+)"', desk.text).group(1)
    ok = await site.post("/host/stops/rouen/checkin", {"code": "coder1", "nonce": nonce}, page="/host/stops/rouen/checkin")
    assert "Entrée validée" in text_of(ok)
    twice = await site.post("/host/stops/rouen/checkin", {"code": "CODER1", "nonce": "n2"}, page="/host/stops/rouen/checkin")
    assert "Entrée refusée" in text_of(twice) and "Déjà enregistré·e" in text_of(twice)
    unknown = await site.post("/host/stops/rouen/checkin", {"code": "NOPE", "nonce": "n3"}, page="/host/stops/rouen/checkin")
    assert "Code inconnu" in text_of(unknown)
    assert site.fake.checkins[0] == {"code": "coder1", "stop_id": "rouen", "nonce": nonce}


async def test_host_creates_chapters_and_publishes_a_replay(site: Site) -> None:
    await site.login(HOST_NOR)
    page = "/host/stops/rouen/replays"
    form = {"session_id": "rouen-s1", "title": "Ouverture", "description": "", "provider": "youtube",
            "url": "http://insecure", "duration_s": "45:00", "speakers": "Claire Martin ; oui\nJean ; non"}
    refused = await site.post(page, form, page=page)
    assert field_errors(refused) == {"url": "must be an https URL"} and 'value="45:00"' in refused.text
    await site.post(page, {**form, "url": "https://youtu.be/x"}, page=page)
    replay = site.fake.replays["rep2"]
    assert replay["duration_s"] == 2700
    assert replay["speakers"] == [{"name": "Claire Martin", "recording_consent": True},
                                  {"name": "Jean", "recording_consent": False}]
    bad = await site.post(f"{page}/rep2/chapters", {"chapters": "zz Intro"}, page=page)
    assert field_errors(bad) == {"c-rep2-chapters": "Durée attendue au format h:mm:ss ou mm:ss"}
    await site.post(f"{page}/rep2/chapters", {"chapters": "0:00 Intro\n5:00 Débat"}, page=page)
    assert replay["chapters"] == [{"at_s": 0, "title": "Intro"}, {"at_s": 300, "title": "Débat"}]
    early = await site.post(f"{page}/rep2/publish", page=page)
    assert "Action refusée : the replay is not ready yet" in text_of(await site.get(early.headers["location"]))
    await site.post(f"{page}/rep2/ready", page=page)
    await site.post(f"{page}/rep2/publish", page=page)
    assert replay["publication"] == "published"


async def test_staff_delivery_log_and_dead_letters_with_one_service_down(site: Site) -> None:
    await sign_up(site, "rouen")
    await site.login(STAFF)
    assert "ada@example.fr" in text_of(await site.get("/staff/deliveries?recipient=ada@example.fr"))
    site.fake.down.add("replays")
    page = await site.get("/staff/dead-letters")
    assert page.status_code == 200
    assert "Le service des replays est momentanément indisponible" in text_of(page)
    assert 'action="/staff/dead-letters/notifications/dl1/replay"' in page.text
    replayed = await site.post("/staff/dead-letters/notifications/dl1/replay", page="/staff/dead-letters")
    assert "Message rejoué" in text_of(await site.get(replayed.headers["location"]))


async def test_hosts_cannot_open_staff_pages(site: Site) -> None:
    await site.login(HOST_NOR)
    assert (await site.get("/staff")).status_code == 403


async def test_mail_page_lists_and_shows_captured_mail_in_a_sandbox(site: Site) -> None:
    await sign_up(site, "rouen")
    box = await site.get("/mail")
    assert "Inscription confirmée — Rouen" in text_of(box) and 'href="/mail/m1"' in box.text
    message = await site.get("/mail/m1")
    assert re.search(r'<iframe class="mail-html" [^>]*sandbox="[^"]*" srcdoc="&lt;base target=&#34;_top&#34;&gt;',
                     message.text)
    assert "allow-scripts" not in message.text and "allow-same-origin" not in message.text
    assert '<a href="http://testserver/r/r1?token=tok-r1">' in message.text  # listed under the message too
    assert "style-src 'self' 'unsafe-inline'" in message.headers["content-security-policy"]


async def test_mail_page_is_hidden_outside_local_mode() -> None:
    fake = FakeBackends()
    app = create_app(Settings(**URLS, mode="production", session_secret="s" * 32), transport=httpx.MockTransport(fake))
    async with running_app(app, base_url="https://testserver") as client:
        assert (await client.get("/mail")).status_code == 404
        assert (await client.get("/mail/m1")).status_code == 404
        assert not any(path.startswith("mail") for _, path in fake.calls)
        assert "/mail" not in (await client.get("/")).text


@pytest.mark.parametrize("path", ["/stops/nope", "/stops/chateau"])
async def test_unknown_or_unpublished_stop_is_a_404_page(site: Site, path: str) -> None:
    page = await site.get(path)
    assert page.status_code == 404 and "Page introuvable" in text_of(page)


async def test_backends_see_the_person_s_address_so_rate_limits_are_per_person() -> None:
    fake = FakeBackends(portal_url="http://testserver")
    seen: list[str | None] = []

    def recording(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            seen.append(request.headers.get("x-forwarded-for"))
        return fake(request)

    app = create_app(Settings(**URLS), transport=httpx.MockTransport(recording))
    async with running_app(app) as client:
        await sign_up(Site(client, fake), "rouen")
    assert seen and set(seen) == {"127.0.0.1"}, "sign-ups carry the caller's address, not the portal's"
