"""The portal alone in a real Chromium, its backends faked in-process.

Checks what only a browser shows: the public forms work with JavaScript off,
CSRF is enforced on a real form post, the CSP lets our own CSS and the check-in
script run (and nothing else), mail opens in a sandbox whose links lead back to
the portal, keyboard focus is visible, and the pages fit a phone's width.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from portal.config import Settings
from portal.fakes import HOST_NOR, URLS, FakeBackends
from portal.main import create_app
from shared.localstack.processes import free_port

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PHONE = {"width": 375, "height": 740}


@pytest.fixture(scope="module")
def portal_alone() -> Iterator[tuple[str, FakeBackends]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    fake = FakeBackends(portal_url=url)
    app = create_app(Settings(**URLS, http_port=port), transport=httpx.MockTransport(fake))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the portal did not start"
        time.sleep(0.05)
    yield url, fake
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def csp_violations() -> list[str]:
    return []


def new_page(browser, violations: list[str], **options):
    page = browser.new_context(**options).new_page()
    page.set_default_timeout(10_000)
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    return page


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"smoke-{name}.png"), full_page=True)


def test_sign_up_without_javascript_then_cancel_from_the_mail_link(portal_alone, browser, csp_violations) -> None:
    url, fake = portal_alone
    page = new_page(browser, csp_violations, java_script_enabled=False)
    response = page.goto(url + "/")
    assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    # Our stylesheet applies under the CSP (the header is the brand blue).
    assert page.eval_on_selector(".site-header", "e => getComputedStyle(e).backgroundColor") == "rgb(31, 58, 147)"
    shoot(page, "home")
    page.get_by_role("link", name="Rouen", exact=True).click()
    assert page.get_by_role("heading", level=1).inner_text().startswith("Rouen")

    page.get_by_label("Adresse électronique").fill("not-an-email")
    page.get_by_label("Nom (obligatoire)", exact=True).fill("Lovelace")
    page.get_by_role("button", name="Je m'inscris").click()
    summary = page.locator(".error-summary")
    assert "value is not a valid email address" in summary.inner_text()
    assert page.get_by_label("Nom (obligatoire)", exact=True).input_value() == "Lovelace"  # what was typed is kept
    shoot(page, "stop-errors")
    summary.get_by_role("link", name="Adresse électronique").click()
    assert page.url.endswith("#email")

    page.get_by_label("Adresse électronique").fill("ada@example.fr")
    page.get_by_label("Prénom").fill("Ada")
    page.get_by_label("Profil").select_option("public_sector_staff")
    page.get_by_label("J'accepte d'être photographié·e").check()
    page.get_by_role("button", name="Je m'inscris").click()
    assert page.get_by_test_id("registration-status").inner_text() == "Confirmée"
    assert fake.registrations["r1"]["email"] == "ada@example.fr"
    shoot(page, "manage")

    page.goto(url + "/mail")
    page.get_by_role("link", name="Inscription confirmée — Rouen").click()
    shoot(page, "mail-message")
    page.get_by_role("link", name=f"{url}/r/r1?token=tok-r1").click()
    page.get_by_role("button", name="Annuler mon inscription").click()
    assert "Votre inscription est annulée" in page.locator(".flash").inner_text()
    assert fake.registrations["r1"]["status"] == "cancelled"
    assert csp_violations == []


def test_links_inside_the_sandboxed_mail_open_the_portal(portal_alone, browser, csp_violations) -> None:
    url, fake = portal_alone
    page = new_page(browser, csp_violations)
    page.goto(url + "/follow")
    page.get_by_label("Adresse électronique").fill("viewer@example.fr")
    page.get_by_label("Normandie").check()
    page.get_by_role("button", name="Je m'abonne").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Vérifiez votre boîte de réception"
    page.goto(url + "/mail")
    page.get_by_role("link", name="Confirmez votre abonnement").first.click()
    frame = page.frame_locator("iframe.mail-html")
    frame.get_by_role("link").first.click()
    page.wait_for_url("**/follow/confirm?token=*")
    assert page.get_by_role("heading", level=1).inner_text() == "Abonnement confirmé"
    assert any(f["confirmed"] for f in fake.followers.values())
    assert csp_violations == []


def test_a_form_posted_without_its_csrf_token_is_refused(portal_alone, browser, csp_violations) -> None:
    url, fake = portal_alone
    page = new_page(browser, csp_violations)
    page.goto(url + "/follow")
    page.eval_on_selector("input[name=csrf_token]", "e => e.value = 'forged'")
    page.get_by_label("Adresse électronique").fill("csrf@example.fr")
    page.get_by_label("Bretagne").check()
    page.get_by_role("button", name="Je m'abonne").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Formulaire expiré"
    assert not any(f["email"] == "csrf@example.fr" for f in fake.followers.values())


def test_keyboard_focus_is_visible_and_english_is_available(portal_alone, browser, csp_violations) -> None:
    url, _ = portal_alone
    page = new_page(browser, csp_violations)
    page.goto(url + "/replays")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => [document.activeElement.className, getComputedStyle(document.activeElement).outlineStyle]")
    assert focused == ["skip-link", "solid"]
    assert page.locator("iframe[title='Lecteur vidéo : Ouverture à Nevers']").count() == 1
    page.get_by_role("link", name="English").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Replays"
    page.goto(url + "/")
    assert page.get_by_role("heading", level=1).inner_text() == "The 2022 tour"
    page.get_by_role("link", name="Français").click()
    assert csp_violations == []


def test_host_desk_fits_a_phone_and_its_script_runs_under_the_csp(portal_alone, browser, csp_violations) -> None:
    url, fake = portal_alone
    page = new_page(browser, csp_violations, viewport=PHONE, is_mobile=True)
    page.goto(url + "/host/stops/rouen/checkin")
    assert "/login" in page.url
    page.get_by_label("Adresse électronique").fill(HOST_NOR[0])
    page.get_by_label("Mot de passe").fill(HOST_NOR[1])
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url("**/host/stops/rouen/checkin")
    code = page.get_by_label("Code d'entrée")
    assert page.evaluate("() => document.activeElement.id") == "code"  # ready to type or scan
    assert code.bounding_box()["height"] >= 60  # large, touch-friendly
    code.fill("NOPE")
    code.press("Enter")
    assert "Code inconnu" in page.get_by_test_id("checkin-result").inner_text()
    shoot(page, "checkin-phone")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["portal_session"]["httpOnly"] and cookies["portal_session"]["sameSite"] == "Lax"
    for path in ("/", "/stops/rouen", "/replays", "/host", "/host/stops/rouen", "/mail"):
        page.goto(url + path)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"], path
    shoot(page, "mail-phone")
    assert csp_violations == []
