"""What every page handler shares: the app context, rendering, forms, the signed-in user."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from portal import geo, i18n
from portal.clients import Backends, ServiceError, ServiceUnavailable
from portal.config import Settings
from portal.security import csrf_token
from portal.values import local_clock

T = TypeVar("T")

TEMPLATES_DIR = Path(__file__).parent / "templates"
PUBLIC_STATUSES = {"accepted", "registration_open", "registration_closed", "held", "archived", "postponed",
                   "cancelled"}
_SEASON_TTL_S = 60.0


class LoginRequired(Exception):
    """The page needs a host or staff session."""


@dataclass
class Portal:
    """The app-wide context, kept on ``app.state.portal``."""

    settings: Settings
    backends: Backends
    templates: Jinja2Templates = field(init=False)
    _seasons: tuple[float, list[str]] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
        env = self.templates.env
        env.globals.update(region_name=geo.region_name, regions=geo.REGIONS)
        env.filters.update(fdate=i18n.format_date, ftime=local_clock, duration=i18n.format_duration)

    async def seasons(self) -> list[str]:
        """Seasons that have stops, latest first (cached briefly: every public page asks)."""
        if self._seasons and time.monotonic() - self._seasons[0] < _SEASON_TTL_S:
            return self._seasons[1]
        found = {str(stop["season"]) for stop in await self.backends.venues.stops() if stop.get("season")}
        seasons = sorted(found, reverse=True)
        self._seasons = (time.monotonic(), seasons)
        return seasons

    async def current_season(self) -> str:
        """The configured season, else the latest season with stops."""
        return self.settings.current_season or next(iter(await self.seasons()), "")


def portal(request: Request) -> Portal:
    return request.app.state.portal


def backends(request: Request) -> Backends:
    return portal(request).backends


@dataclass(frozen=True)
class User:
    email: str
    role: str
    territory_id: str | None
    token: str

    @property
    def is_staff(self) -> bool:
        return self.role == "staff"


def current_user(request: Request) -> User | None:
    session = request.state.session
    if not session.get("token"):
        return None
    return User(session.get("email", ""), session.get("role", ""), session.get("territory_id"), session["token"])


def require_user(request: Request, role: str | None = None) -> User:
    """A signed-in user (staff passes any role check); otherwise the login page."""
    user = current_user(request)
    if user is None:
        raise LoginRequired()
    if role and not user.is_staff and user.role != role:
        raise ServiceError(403, "forbidden", "role required: " + role)
    return user


def flash(request: Request, key: str, **params: Any) -> None:
    """A one-time message shown on the next page (after a redirect)."""
    request.state.session.set("flash", {"key": key, "params": params})


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def login_url(request: Request) -> str:
    return "/login?next=" + quote(request.url.path)


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = request.state.lang
    flashed = request.state.session.pop_value("flash")
    nonce = request.state.csp_nonce

    def t(key: str, **params: Any) -> str:
        return i18n.translate(key, lang, **params)

    switch = {**request.query_params, "lang": "en" if lang == "fr" else "fr"}
    context.update(
        request=request, lang_switch_url=f"{request.url.path}?{urlencode(switch)}", t=t, lang=lang, user=current_user(request), csrf_token=lambda: csrf_token(request),
        flash=t(flashed["key"], **flashed.get("params", {})) if isinstance(flashed, dict) else None,
        is_local=portal(request).settings.is_local, csp_nonce=nonce, current_path=request.url.path,
    )
    return portal(request).templates.TemplateResponse(request, name, context, status_code=status)


@dataclass
class Form:
    """What the person typed, and what is wrong with it, field by field.

    ``labels`` maps each field id to its label's i18n key; ids use ``_`` where
    the service's field names use ``.`` (``venue.name`` → ``venue_name``).
    """

    labels: Mapping[str, str]
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    @property
    def invalid(self) -> bool:
        return bool(self.errors or self.messages)

    def value(self, name: str, default: Any = "") -> Any:
        return self.values.get(name, default)

    def checked(self, name: str, option: str | None = None) -> bool:
        value = self.values.get(name)
        if option is None:
            return bool(value) and value not in ("0", "false", "off")
        return option in value if isinstance(value, list) else value == option

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def apply(self, error: ServiceError) -> None:
        """Put the service's field errors next to our fields; anything else goes on top."""
        for name, message in error.fields.items():
            target = self._field_for(name)
            if target:
                self.error(target, message)
            else:
                self.messages.append(f"{name}: {message}")
        if not error.fields:
            self.messages.append(error.detail)

    def unavailable(self, error: ServiceUnavailable, lang: str) -> None:
        self.messages.append(i18n.translate("error.service_down", lang, service=i18n.service_name(error.service, lang)))

    def _field_for(self, name: str) -> str | None:
        candidate = name.replace(".", "_")
        while candidate:
            if candidate in self.labels:
                return candidate
            # consents.contact.x → consents_contact → consents: the closest field we show.
            candidate = candidate.rpartition("_")[0]
        return None


async def submit(request: Request, form: Form, call: Callable[[], Awaitable[T]]) -> T | None:
    """Run a backend call for a form; on refusal or outage, record why on the form and return None."""
    if form.invalid:
        return None
    try:
        return await call()
    except ServiceError as error:
        form.apply(error)
    except ServiceUnavailable as error:
        form.unavailable(error, request.state.lang)
    return None


async def read_form(request: Request) -> dict[str, Any]:
    """The posted fields (multi-valued ones as lists), without the CSRF token."""
    data = await request.form()
    values: dict[str, Any] = {}
    for key in data.keys():
        if key == "csrf_token":
            continue
        items = [v.strip() if isinstance(v, str) else v for v in data.getlist(key)]
        values[key] = items if len(items) > 1 or key.endswith("[]") else items[0]
    return {key.removesuffix("[]"): value for key, value in values.items()}


def as_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    return list(value) if isinstance(value, list) else [value]
