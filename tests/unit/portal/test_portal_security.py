"""CSRF on every form, the signed session cookie, and the security headers."""

from __future__ import annotations

import re

import httpx
import pytest

from portal.config import Settings
from portal.fakes import STAFF, URLS, FakeBackends
from portal.main import create_app
from portal.security import SESSION_COOKIE, SessionCodec
from shared.testing.http import running_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def make(mode: str = "local") -> tuple[FakeBackends, object]:
    fake = FakeBackends()
    secret = {"session_secret": "p" * 32} if mode == "production" else {}
    return fake, create_app(Settings(**URLS, mode=mode, **secret), transport=httpx.MockTransport(fake))


def test_session_codec_rejects_tampering_and_age() -> None:
    codec = SessionCodec("secret-1234567890", max_age_s=60)
    value = codec.dumps({"token": "jwt", "role": "host"}, now=1000)
    assert codec.loads(value, now=1030) == {"token": "jwt", "role": "host"}
    assert codec.loads(value, now=1061) == {}
    payload, signature = value.rsplit(".", 1)
    assert codec.loads(f"{payload}x.{signature}", now=1030) == {}
    assert SessionCodec("another-secret-123", 60).loads(value, now=1030) == {}
    assert codec.loads("garbage", now=1030) == {} and codec.loads(None) == {}


def test_production_needs_a_session_secret() -> None:
    with pytest.raises(ValueError, match="PORTAL_SESSION_SECRET"):
        Settings(mode="production")


async def test_every_post_route_refuses_a_missing_or_foreign_csrf_token() -> None:
    fake, app = make()
    posts = [path for path, operations in app.openapi()["paths"].items() if "post" in operations]
    assert len(posts) >= 18
    async with running_app(app) as client, running_app(app) as other:
        await client.get("/login")  # a session with its own token
        foreign = CSRF.search((await other.get("/login")).text).group(1)
        calls_before = len(fake.calls)
        for template in posts:
            path = re.sub(r"\{[^}]+\}", "x", template)
            for data in ({}, {"csrf_token": foreign}):
                response = await client.post(path, data=data)
                assert response.status_code == 403, (path, data)
                assert "Formulaire expiré" in response.text
        assert len(fake.calls) == calls_before  # nothing reached a backend


async def test_login_rotates_the_session_and_a_forged_cookie_is_ignored() -> None:
    _, app = make()
    async with running_app(app) as client:
        before = CSRF.search((await client.get("/login")).text).group(1)
        await client.post("/login", data={"csrf_token": before, "email": STAFF[0], "password": STAFF[1]})
        after = CSRF.search((await client.get("/staff")).text).group(1)
        assert after != before
        cookie = client.cookies[SESSION_COOKIE]
        client.cookies.set(SESSION_COOKIE, cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"))
        assert (await client.get("/staff")).status_code == 303  # back to the login page


async def test_cookie_flags_and_security_headers_in_local_mode() -> None:
    _, app = make()
    async with running_app(app) as client:
        page = await client.get("/stops/rouen")
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    csp = page.headers["content-security-policy"]
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "form-action 'self'",
                      "style-src 'self'", "frame-src https: http:"):
        assert directive in csp
    assert "'unsafe-inline'" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin" and page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text  # public pages work without JavaScript


async def test_production_cookie_is_secure_and_frames_https_only() -> None:
    _, app = make("production")
    async with running_app(app, base_url="https://testserver") as client:
        page = await client.get("/stops/rouen")
    assert "secure" in page.headers["set-cookie"].lower()
    assert "frame-src https:;" in page.headers["content-security-policy"]
    assert page.headers["strict-transport-security"].startswith("max-age=")


async def test_check_in_script_runs_only_with_the_page_nonce() -> None:
    _, app = make()
    async with running_app(app) as client:
        token = CSRF.search((await client.get("/login")).text).group(1)
        await client.post("/login", data={"csrf_token": token, "email": STAFF[0], "password": STAFF[1]})
        page = await client.get("/host/stops/rouen/checkin")
    nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"]).group(1)
    assert f'<script nonce="{nonce}">' in page.text


async def test_unexpected_failure_is_a_friendly_500_without_details() -> None:
    fake, app = make()
    fake.stops["rouen"]["sessions"] = "not a list"  # a backend answering nonsense
    async with running_app(app) as client:
        page = await client.get("/stops/rouen")
    assert page.status_code == 500 and "Erreur inattendue" in page.text
    assert "Traceback" not in page.text and page.headers["x-frame-options"] == "DENY"
