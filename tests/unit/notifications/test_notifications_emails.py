"""Emails as people get them: locale, links to the portal, list headers, attachments."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from urllib.parse import parse_qs, urlsplit

import pytest

from notifications.mailer import Composer, Links, NotReady, format_when
from notifications.repository import new_delivery
from shared.auth import LinkSigner
from shared.contracts.venues import StopSnapshot

PORTAL = "http://portal.test"
PUBLIC = "http://notifications.test"
SIGNER = LinkSigner("unit-secret", namespace="notifications")
STOP = StopSnapshot(
    stop_id="stop-1", season=2022, region="NOR", territory_id="t-1", city="Rouen",
    venue={"name": "Halle aux Toiles", "address": "Place de la Basse-Vieille-Tour"}, date=date(2022, 11, 15),
    starts_at=datetime(2022, 11, 15, 8, 30, tzinfo=UTC), ends_at=datetime(2022, 11, 15, 17, tzinfo=UTC),
    theme="Le numérique responsable", capacity=120, status="registration_open", sequence=3,
)


@pytest.fixture
def composer() -> Composer:
    links = Links(SIGNER, portal=PORTAL, public=PUBLIC, ttl_confirm=3600, ttl_prefs=3600)
    return Composer(links, mail_from="IntercoTOUR <noreply@intercotour.local>", unsubscribe_mailto="unsubscribe@intercotour.local")


def roundtrip(msg):
    return message_from_bytes(msg.as_bytes(), policy=policy.default)


def parts(msg):
    return {part.get_content_type(): part for part in msg.walk() if not part.is_multipart()}


def test_confirmation_in_french_with_ics_qr_and_manage_link(composer):
    delivery = new_delivery("k1", channel="email", kind="registration_confirmed", recipient="ada@example.org",
                            data={"stop_id": "stop-1", "first_name": "Ada", "manage_url": "http://portal.test/r/1?token=m",
                                  "check_in_code": "CHK-123", "via": "signup"})
    msg = roundtrip(composer.compose(delivery, stop=STOP))
    assert msg["Subject"] == "Inscription confirmée — IntercoTOUR Rouen"
    assert msg["From"] == "IntercoTOUR <noreply@intercotour.local>" and msg["List-Unsubscribe"] is None
    found = parts(msg)
    text, html = found["text/plain"].get_content(), found["text/html"].get_content()
    assert "Bonjour Ada" in text and "CHK-123" in text and "http://portal.test/r/1?token=m" in text
    assert "mardi 15 novembre 2022 à 09:30" in text  # Europe/Paris, written in French
    assert 'src="cid:qr@intercotour"' in html
    assert found["image/png"]["Content-ID"] == "<qr@intercotour>"
    ics = found["text/calendar"].get_content()
    assert "UID:stop-stop-1@intercotour" in ics and "SEQUENCE:3" in ics and "METHOD:REQUEST" in ics
    assert "TZID=Europe/Paris" in ics and "BEGIN:VTIMEZONE" in ics


def test_english_when_the_person_asked_and_html_is_escaped(composer):
    delivery = new_delivery("k2", channel="email", kind="offer_made", recipient="bob@example.org", locale="en",
                            data={"stop_id": "stop-1", "first_name": "<b>Bob</b>", "manage_url": "",
                                  "expires_at": "2022-11-10T22:00:00+00:00",
                                  "accept_url": "http://portal.test/a", "decline_url": "http://portal.test/d"})
    msg = roundtrip(composer.compose(delivery, stop=STOP))
    found = parts(msg)
    assert msg["Subject"] == "A place is waiting for you — IntercoTOUR Rouen"
    assert "Thursday 10 November 2022 at 23:00" in found["text/plain"].get_content()
    assert "&lt;b&gt;Bob&lt;/b&gt;" in found["text/html"].get_content()


def test_stop_cancelled_carries_a_cancel_ics(composer):
    cancelled = STOP.model_copy(update={"status": "cancelled", "sequence": 4})
    delivery = new_delivery("k3", channel="email", kind="stop_cancelled", recipient="ada@example.org",
                            data={"stop_id": "stop-1", "first_name": "Ada", "manage_url": "", "reason": "météo"})
    ics = parts(roundtrip(composer.compose(delivery, stop=cancelled)))["text/calendar"].get_content()
    assert "METHOD:CANCEL" in ics and "STATUS:CANCELLED" in ics and "SEQUENCE:4" in ics


def test_list_mail_has_one_click_unsubscribe_headers_and_portal_links(composer):
    delivery = new_delivery("k4", channel="email", kind="replay_digest", recipient="eve@example.org",
                            data={"job": "replay:b1:1", "variant": "missed", "first_name": "Eve"})
    replays = [{"title": "Plénière", "url": "https://v.example/1", "duration_s": 3600},
               {"title": "Atelier", "url": "https://v.example/2", "duration_s": 1800}]
    msg = roundtrip(composer.compose(delivery, stop=None, extra={"replays": replays, "city": "Rouen"}))
    assert msg["Subject"] == "Vous l'avez manquée ? 2 nouveaux replays — IntercoTOUR Rouen"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    http_link, mailto = [v.strip().strip("<>") for v in msg["List-Unsubscribe"].split(",")]
    assert http_link.startswith(f"{PUBLIC}/api/v1/unsubscribe?token=")
    token = parse_qs(urlsplit(http_link).query)["token"][0]
    assert SIGNER.verify(token, "unsubscribe")["s"] == "eve@example.org"
    assert mailto == f"mailto:unsubscribe@intercotour.local?subject=unsubscribe-{token}"
    text = parts(msg)["text/plain"].get_content()
    assert f"{PORTAL}/unsubscribe?token=" in text and f"{PORTAL}/preferences?token=" in text
    assert "https://v.example/2" in text


def test_follow_confirmation_links_to_the_portal(composer):
    delivery = new_delivery("k5", channel="email", kind="follow_confirm", recipient="eve@example.org", locale="en",
                            data={"follower_id": "f-1", "regions": ["NOR"]})
    text = parts(roundtrip(composer.compose(delivery, stop=None)))["text/plain"].get_content()
    link = next(word for word in text.split() if word.startswith(f"{PORTAL}/follow/confirm?token="))
    assert SIGNER.verify(parse_qs(urlsplit(link).query)["token"][0], "follow-confirm")["s"] == "f-1"


def test_an_email_about_an_unknown_stop_waits(composer):
    delivery = new_delivery("k6", channel="email", kind="reminder", recipient="ada@example.org",
                            data={"stop_id": "nope", "first_name": "Ada", "manage_url": ""})
    with pytest.raises(NotReady):
        composer.compose(delivery, stop=None)


def test_every_kind_renders_in_both_locales(composer):
    from notifications.domain import KINDS
    context = {"first_name": "A", "manage_url": "u", "check_in_code": "c", "position": 2, "expires_at": "2022-11-10T10:00:00+00:00",
               "accept_url": "a", "decline_url": "d", "by": "organiser", "reason": "r", "to_city": "Nevers",
               "to_status": "confirmed", "previous_starts_at": "2022-10-01T08:00:00+00:00", "stop": STOP,
               "confirm_url": "c", "regions": ["NOR"], "replays": [], "city": "Rouen", "variant": "follower",
               "url": "https://x", "endpoint_id": "e", "failures": 3, "list_mail": True, "portal": PORTAL,
               "unsubscribe_url": "u", "preferences_url": "p"}
    for kind in KINDS:
        for locale in ("fr", "en"):
            rendered = composer.render(kind, locale, context)
            assert rendered.subject and rendered.text.strip() and "<p>" in rendered.html, (kind, locale)


def test_format_when_uses_paris_time():
    assert format_when("2022-07-01T10:00:00+00:00", "fr") == "vendredi 1 juillet 2022 à 12:00"


@pytest.mark.parametrize("kind, data, stop", [
    ("replay_digest", {"job": "replay:b1:1", "variant": "attendee", "first_name": "Zoé <&> O'Neil"}, None),
    ("replay_digest", {"job": "replay:b1:1", "variant": "follower", "first_name": ""}, None),
    ("new_stop", {"stop_id": "stop-1"}, STOP),
])
def test_list_mail_rendered_once_per_batch_is_the_same_email_per_recipient(composer, kind, data, stop, monkeypatch):
    """The fan-out path renders a template once and fills in name, links and recipient per person."""
    # Signed links carry an expiry in seconds: a second ticking between the two renderings
    # would make their tokens differ (seen in CI), so both render at the same instant.
    monkeypatch.setattr("shared.auth.time.time", lambda: 1_800_000_000.0)
    extra = {"replays": [{"title": "Plénière", "url": "https://v.example/1", "duration_s": 3600}], "city": "Rouen"}
    cache: dict = {}
    for who in ("ann@example.org", "bob@example.org"):
        delivery = new_delivery(f"k-{who}", channel="email", kind=kind, recipient=who, locale="fr", data=data)
        raw = composer.outgoing(delivery, stop=stop, extra=extra, cache=cache).raw
        fast = message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=policy.default)  # CRLF on the wire either way
        full = roundtrip(composer.compose(delivery, stop=stop, extra=extra))
        for header in ("From", "To", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post", "X-IntercoTOUR-Delivery"):
            assert fast[header] == full[header], header
        assert fast["To"] == who
        fast_parts, full_parts = parts(fast), parts(full)
        assert fast_parts.keys() == full_parts.keys() == {"text/plain", "text/html"}
        for ctype in fast_parts:
            assert fast_parts[ctype].get_content() == full_parts[ctype].get_content(), ctype
    assert len(cache) == 1  # rendered once for both recipients
