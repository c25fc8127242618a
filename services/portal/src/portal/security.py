"""Signed session cookie, CSRF tokens and security headers.

The session lives entirely in a cookie signed with HMAC-SHA256 (no server
store): it holds the CSRF token and, once logged in, the venues JWT. HttpOnly
keeps it away from scripts, SameSite=Lax keeps it off cross-site POSTs, Secure
outside local mode.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import Response

from portal.clients import CLIENT_ADDRESS
from portal.config import Settings
from shared.logging import get_logger

log = get_logger("portal")

SESSION_COOKIE = "portal_session"
CSRF_FIELD = "csrf_token"


class CsrfError(Exception):
    """A POST without the session's CSRF token (forged, or the session expired)."""


class Session(dict[str, Any]):
    """The decoded cookie; ``modified`` tells the middleware to send it back."""

    modified = False

    def set(self, key: str, value: Any) -> None:
        self[key] = value
        self.modified = True

    def pop_value(self, key: str) -> Any:
        if key in self:
            self.modified = True
        return self.pop(key, None)

    def reset(self, **values: Any) -> None:
        """New identity (login/logout): drop everything, including the CSRF token."""
        self.clear()
        self.update(values)
        self.modified = True


class SessionCodec:
    def __init__(self, secret: str, max_age_s: int) -> None:
        self._key = hashlib.sha256(b"portal-session\0" + secret.encode()).digest()
        self.max_age_s = max_age_s

    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, payload, hashlib.sha256).digest()).decode().rstrip("=")

    def dumps(self, data: dict[str, Any], now: float | None = None) -> str:
        body = json.dumps({"d": data, "iat": int(now if now is not None else time.time())}, separators=(",", ":"))
        payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
        return f"{payload}.{self._sign(payload.encode())}"

    def loads(self, value: str | None, now: float | None = None) -> dict[str, Any]:
        """The data, or {} when the cookie is missing, altered or too old."""
        if not value or "." not in value:
            return {}
        payload, signature = value.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(payload.encode())):
            return {}
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
            return {}
        issued = body.get("iat", 0)
        if not isinstance(issued, int) or (now if now is not None else time.time()) - issued > self.max_age_s:
            return {}
        data = body.get("d")
        return data if isinstance(data, dict) else {}


def csrf_token(request: Request) -> str:
    session: Session = request.state.session
    if "csrf" not in session:
        session.set("csrf", secrets.token_urlsafe(32))
    return session["csrf"]


async def csrf_protect(request: Request) -> None:
    """Router dependency: every POST must carry the session's token in a hidden field."""
    if request.method != "POST":
        return
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = request.state.session.get("csrf")
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        raise CsrfError()


def content_security_policy(nonce: str, *, allow_http_frames: bool, inline_styles: bool = False) -> str:
    # Video embeds come from the providers' https origins; local fakes may serve plain http.
    frames = "https: http:" if allow_http_frames else "https:"
    styles = "'self' 'unsafe-inline'" if inline_styles else "'self'"
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        f"style-src {styles}",
        "img-src 'self' data:",
        f"frame-src {frames}",
        "media-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


LANGUAGES = ("fr", "en")
LANG_COOKIE = "lang"


class PortalMiddleware(BaseHTTPMiddleware):
    """Per request: session, language (``?lang=en`` sticks in a cookie), CSP nonce; security headers on every answer."""

    def __init__(self, app: Any, settings: Settings, error_page: Callable[[Request], Response]) -> None:
        super().__init__(app)
        self.error_page = error_page
        self.codec = SessionCodec(settings.session_secret.get_secret_value(), settings.session_max_age_s)
        self.secure = not settings.is_local
        self.allow_http_frames = settings.is_local

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        CLIENT_ADDRESS.set(request.client.host if request.client else None)
        request.state.session = Session(self.codec.loads(request.cookies.get(SESSION_COOKIE)))
        asked = request.query_params.get("lang")
        request.state.lang = asked if asked in LANGUAGES else (
            request.cookies.get(LANG_COOKIE) if request.cookies.get(LANG_COOKIE) in LANGUAGES else "fr")
        request.state.csp_nonce = secrets.token_urlsafe(16)
        request.state.inline_styles = False
        try:
            response = await call_next(request)
        except Exception:  # noqa: BLE001 - the last line of defence: a friendly page, never a stack trace
            log.exception("portal.unhandled", path=request.url.path)
            response = self.error_page(request)
        if response.status_code == 500 and response.headers.get("content-type", "").startswith("application/json"):
            # shared.http turns an unexpected error into its JSON envelope; people get a page instead.
            response = self.error_page(request)
        session: Session = request.state.session
        if session.modified:
            response.set_cookie(SESSION_COOKIE, self.codec.dumps(dict(session)), max_age=self.codec.max_age_s,
                                httponly=True, samesite="lax", secure=self.secure, path="/")
        if asked in LANGUAGES:
            response.set_cookie(LANG_COOKIE, asked, max_age=365 * 86400, httponly=True, samesite="lax",
                                secure=self.secure, path="/")
        headers = response.headers
        headers.setdefault("Content-Security-Policy", content_security_policy(
            request.state.csp_nonce, allow_http_frames=self.allow_http_frames,
            inline_styles=request.state.inline_styles))
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
        if headers.get("content-type", "").startswith("text/html"):
            # Pages can carry signed-link tokens or a host's data: never cache them.
            headers.setdefault("Cache-Control", "no-store")
        if self.secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
