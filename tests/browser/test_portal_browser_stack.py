"""The portal as people use it, in Chromium, against the whole seeded local stack.

Needs ``shared.testing.stack`` (the seeded stack on free ports) and Debian's chromium.
Mail goes through the real capture server and is read from the portal's /mail page.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

pytest.importorskip("shared.testing.stack")

pytest_plugins = ["shared.testing.stack"]
pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
STAFF = ("admin@intercotour.local", "intercotour-admin")
HOST_PASSWORD = "intercotour-host"
MAIL_TIMEOUT_S = 45


@pytest.fixture(scope="module")
def urls(local_stack) -> dict[str, str]:
    return local_stack.urls


@pytest.fixture(scope="module")
def season_stops(urls) -> list[dict]:
    stops = httpx.get(f"{urls['venues']}/api/v1/stops", params={"status": "registration_open"}, timeout=10).json()
    season = max(s["season"] for s in stops["items"])
    return [s for s in stops["items"] if s["season"] == season]


def new_page(browser):
    page = browser.new_context(locale="fr-FR").new_page()
    page.set_default_timeout(15_000)
    return page


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def unique_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.fr"


def mail_rows(page, portal: str, recipient: str, at_least: int):
    """The /mail rows addressed to ``recipient``, newest first, once there are ``at_least``."""
    deadline = time.monotonic() + MAIL_TIMEOUT_S
    while True:
        page.goto(f"{portal}/mail")
        rows = page.locator("tbody tr").filter(has_text=recipient)
        if rows.count() >= at_least or time.monotonic() > deadline:
            assert rows.count() >= at_least, f"{rows.count()} mail(s) for {recipient} after {MAIL_TIMEOUT_S}s"
            return rows
        time.sleep(1)


def open_newest_mail_link(page, portal: str, recipient: str, count: int, path_part: str) -> None:
    """Open the newest of ``count`` mails to ``recipient`` and follow its link containing ``path_part``."""
    mail_rows(page, portal, recipient, count).first.get_by_role("link").click()
    page.locator(f".mail-links a[href*='{path_part}']").first.click()


def sign_up(page, portal: str, stop_id: str, email: str) -> None:
    page.goto(f"{portal}/stops/{stop_id}")
    page.get_by_label("Adresse électronique").fill(email)
    page.get_by_label("Prénom").fill("Camille")
    page.get_by_label("Nom (obligatoire)", exact=True).fill("Test")
    page.get_by_label("Organisation").fill("Métropole")
    page.get_by_label("Profil").select_option("public_sector_staff")
    page.get_by_label("J'accepte d'être recontacté·e au sujet du tour").check()
    page.get_by_role("button", name="Je m'inscris").click()


def login(page, portal: str, email: str, password: str) -> None:
    page.goto(f"{portal}/login")
    page.get_by_label("Adresse électronique").fill(email)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    assert "/login" not in page.url, page.locator("main").inner_text()


def test_attendee_signs_up_reads_the_mail_and_cancels(browser, urls, season_stops) -> None:
    stop = next(s for s in season_stops if s["region"] != "NOR")
    page, email = new_page(browser), unique_email("attendee")
    page.goto(urls["portal"] + "/")
    shoot(page, "home")
    sign_up(page, urls["portal"], stop["id"], email)
    assert page.get_by_test_id("registration-status").inner_text() == "Confirmée"
    shoot(page, "manage")
    open_newest_mail_link(page, urls["portal"], email, 1, "/r/")
    assert page.get_by_test_id("registration-status").inner_text() == "Confirmée"
    page.get_by_role("button", name="Annuler mon inscription").click()
    assert page.get_by_test_id("registration-status").inner_text() == "Annulée"


def test_full_stop_waitlists_and_a_cancellation_offers_the_place(browser, urls, season_stops) -> None:
    stop = next(s for s in season_stops if s["region"] == "NOR")
    page = new_page(browser)
    holders = [unique_email(f"holder{n}") for n in range(stop["capacity"])]
    for email in holders:
        sign_up(page, urls["portal"], stop["id"], email)
        assert page.get_by_test_id("registration-status").inner_text() == "Confirmée"
    waiting = unique_email("waiting")
    sign_up(page, urls["portal"], stop["id"], waiting)
    assert page.get_by_test_id("registration-status").inner_text() == "En liste d'attente"
    assert "position 1" in page.locator("main").inner_text()

    open_newest_mail_link(page, urls["portal"], holders[0], 1, "/r/")
    page.get_by_role("button", name="Annuler mon inscription").click()

    open_newest_mail_link(page, urls["portal"], waiting, 2, "/r/")  # waitlisted, then the offer
    shoot(page, "manage-offer")
    page.get_by_role("button", name="J'accepte la place").click()
    assert page.get_by_test_id("registration-status").inner_text() == "Confirmée"


def test_host_proposes_staff_accepts_and_opens_registration(browser, urls, season_stops) -> None:
    stop = next(s for s in season_stops if s["region"] == "BRE")
    next_season = int(stop["season"]) + 1
    city = f"Lorient-{uuid.uuid4().hex[:6]}"
    host = new_page(browser)
    login(host, urls["portal"], "host-bre@intercotour.local", HOST_PASSWORD)
    host.goto(urls["portal"] + "/host/stops/new")
    host.get_by_label("Saison").fill(str(next_season))
    host.get_by_label("Région").select_option("BRE")
    host.get_by_label("Ville").fill(city)
    host.get_by_label("Thème").fill("Le numérique responsable en Bretagne")
    host.get_by_label("Nom du lieu").fill("Palais des congrès")
    host.get_by_label("Latitude").fill("47,75")
    host.get_by_label("Longitude").fill("-3.37")
    host.get_by_label("Date").fill(f"{next_season}-05-12")
    host.get_by_label("Début").fill("09:00")
    host.get_by_label("Fin").fill("13:00")
    host.get_by_label("Capacité").fill("120")
    shoot(host, "host-propose")
    host.get_by_role("button", name="Envoyer la proposition").click()
    assert "Proposition envoyée" in host.locator(".flash").inner_text(), host.locator("main").inner_text()
    stop_url = host.url
    shoot(host, "host-stop")

    staff = new_page(browser)
    login(staff, urls["portal"], *STAFF)
    staff.goto(urls["portal"] + "/staff")
    proposal = staff.locator("article.proposal").filter(has_text=city)
    proposal.get_by_role("button", name="Accepter").click()
    assert "Proposition acceptée" in staff.locator(".flash").inner_text()
    staff.locator("tr").filter(has_text=city).get_by_role("button", name="Ouvrir les inscriptions").click()
    assert "Inscriptions ouvertes" in staff.locator(".flash").inner_text()
    shoot(staff, "staff")
    host.goto(stop_url)
    assert "Inscriptions ouvertes" in host.locator("h1").inner_text()


def test_viewer_follows_a_region_and_a_published_replay_is_mailed_once(browser, urls) -> None:
    # Replays are published for stops that were held: the seeded 2022 season.
    held = httpx.get(f"{urls['venues']}/api/v1/stops", params={"status": "held", "region": "OCC"}, timeout=10).json()
    stop = held["items"][0]
    viewer, email = new_page(browser), unique_email("viewer")
    viewer.goto(urls["portal"] + "/follow")
    viewer.get_by_label("Adresse électronique").fill(email)
    viewer.get_by_label("Occitanie").check()
    shoot(viewer, "follow")
    viewer.get_by_role("button", name="Je m'abonne").click()
    open_newest_mail_link(viewer, urls["portal"], email, 1, "/follow/confirm")
    assert viewer.get_by_role("heading", level=1).inner_text() == "Abonnement confirmé"

    host = new_page(browser)
    login(host, urls["portal"], "host-occ@intercotour.local", HOST_PASSWORD)
    host.goto(f"{urls['portal']}/host/stops/{stop['id']}/replays")
    title = f"Table ronde {uuid.uuid4().hex[:6]}"
    host.get_by_label("Titre").fill(title)
    host.get_by_label("Adresse de la vidéo").fill("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    host.get_by_label("Durée").fill("45:00")
    host.get_by_label("Intervenant·es et consentement").fill("Claire Martin ; oui")
    host.get_by_role("button", name="Créer le replay").click()
    assert "Replay créé" in host.locator(".flash").inner_text(), host.locator("main").inner_text()
    section = host.locator("section.replay-admin").filter(has_text=title)
    section.get_by_role("button", name="Marquer comme prêt").click()
    host.locator("section.replay-admin").filter(has_text=title).get_by_role("button", name="Publier").click()
    assert "Replay publié" in host.locator(".flash").inner_text(), host.locator("main").inner_text()
    shoot(host, "host-replays")

    mail_rows(viewer, urls["portal"], email, 2)  # the confirmation, then the replay
    time.sleep(5)  # longer than the digest window: a second copy would have arrived by now
    assert mail_rows(viewer, urls["portal"], email, 2).count() == 2
    shoot(viewer, "mail")
    viewer.goto(f"{urls['portal']}/replays?region=OCC&season={stop['season']}")
    assert viewer.locator(f"iframe[title='Lecteur vidéo : {title}']").count() == 1
    shoot(viewer, "replays")


def test_screenshots_of_the_staff_and_host_desks(browser, urls, season_stops) -> None:
    stop = season_stops[0]
    staff = new_page(browser)
    login(staff, urls["portal"], *STAFF)
    for path, name in [(f"/stops/{stop['id']}", "stop"), ("/staff/deliveries", "staff-deliveries"),
                       ("/staff/dead-letters", "staff-dead-letters"), (f"/host/stops/{stop['id']}/attendees", "attendees"),
                       (f"/host/stops/{stop['id']}/checkin", "checkin")]:
        response = staff.goto(urls["portal"] + path)
        assert response.status == 200, (path, staff.locator("main").inner_text())
        shoot(staff, name)
    staff.get_by_label("Code d'entrée").fill("NOT-A-CODE")
    staff.get_by_role("button", name="Valider l'entrée").click()
    assert "Entrée refusée" in staff.get_by_test_id("checkin-result").inner_text()
