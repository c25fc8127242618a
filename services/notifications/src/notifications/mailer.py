"""Turning a queued delivery into an email: Jinja2 templates per locale, the
plain-text and HTML alternatives, attachments (.ics, QR code) and list headers."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import segno
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from notifications.domain import LIST_KINDS
from notifications.ics import stop_calendar
from shared.auth import LinkSigner
from shared.contracts.venues import StopSnapshot

TEMPLATES = Path(__file__).parent / "templates"
PARIS = ZoneInfo("Europe/Paris")
_DAYS = {"fr": ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"],
         "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]}
_MONTHS = {"fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
                  "octobre", "novembre", "décembre"],
           "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December"]}
# Kinds whose email carries the stop's calendar entry.
_WITH_ICS = {"registration_confirmed", "stop_postponed", "stop_cancelled", "reminder"}


class NotReady(Exception):
    """Something the email needs (e.g. the stop) is not known yet: retry later."""


def format_when(value: datetime | str, locale: str = "fr") -> str:
    """A date and time in Europe/Paris, written out the way people of that locale read it."""
    moment = (datetime.fromisoformat(value) if isinstance(value, str) else value).astimezone(PARIS)
    lang = "en" if locale == "en" else "fr"
    day = f"{_DAYS[lang][moment.weekday()]} {moment.day} {_MONTHS[lang][moment.month - 1]} {moment.year}"
    return f"{day} {'at' if lang == 'en' else 'à'} {moment:%H:%M}"


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class Links:
    """The signed links people find in emails; they open portal pages, which call this service."""

    def __init__(self, signer: LinkSigner, *, portal: str, public: str, ttl_confirm: int, ttl_prefs: int):
        self._signer = signer
        self.portal = portal.rstrip("/")
        self.public = public.rstrip("/")
        self._ttl_confirm = ttl_confirm
        self._ttl_prefs = ttl_prefs

    def confirm_token(self, follower_id: str) -> str:
        return self._signer.sign("follow-confirm", follower_id, self._ttl_confirm)

    def preferences_token(self, email: str) -> str:
        return self._signer.sign("preferences", email, self._ttl_prefs)

    def unsubscribe_token(self, email: str) -> str:
        return self._signer.sign("unsubscribe", email, self._ttl_prefs)

    def portal_url(self, page: str, token: str) -> str:
        return f"{self.portal}/{page}?token={quote(token)}"


class Composer:
    def __init__(self, links: Links, *, mail_from: str, unsubscribe_mailto: str):
        self._links = links
        self._from = mail_from
        self._mailto = unsubscribe_mailto
        self._env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False, undefined=StrictUndefined,
                                trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        self._env.filters["when"] = format_when

    def render(self, kind: str, locale: str, context: dict[str, Any]) -> Rendered:
        template = self._env.get_template(f"{locale}/{kind}.j2")
        footer = self._env.get_template(f"{locale}/_footer.j2")
        ctx = template.new_context({**context, "locale": locale})
        fctx = footer.new_context({**context, "locale": locale})

        def block(tmpl: Any, c: Any, name: str) -> str:
            return "".join(tmpl.blocks[name](c)).strip()

        return Rendered(
            subject=" ".join(block(template, ctx, "subject").split()),
            text=f"{block(template, ctx, 'text')}\n\n-- \n{block(footer, fctx, 'text')}\n",
            html=(f"<!doctype html><html lang=\"{locale}\"><body>{block(template, ctx, 'html')}"
                  f"<hr>{block(footer, fctx, 'html')}</body></html>"),
        )

    def compose(self, delivery: dict[str, Any], *, stop: StopSnapshot | None, extra: dict[str, Any] | None = None) -> EmailMessage:
        """The whole message for one delivery; raises NotReady if the stop it needs is unknown."""
        kind, locale, recipient = delivery["kind"], delivery["locale"], delivery["recipient"]
        data = dict(delivery.get("data") or {})
        if (kind in _WITH_ICS or data.get("stop_id")) and stop is None:
            raise NotReady(f"stop {data.get('stop_id')} not known yet")
        context: dict[str, Any] = {**data, **(extra or {}), "stop": stop, "portal": self._links.portal,
                                   "list_mail": kind in LIST_KINDS}
        headers: dict[str, str] = {}
        if kind in LIST_KINDS:
            token = self._links.unsubscribe_token(recipient)
            context["unsubscribe_url"] = self._links.portal_url("unsubscribe", token)
            context["preferences_url"] = self._links.portal_url("preferences", self._links.preferences_token(recipient))
            headers["List-Unsubscribe"] = (f"<{self._links.public}/api/v1/unsubscribe?token={quote(token)}>, "
                                           f"<mailto:{self._mailto}?subject=unsubscribe-{quote(token)}>")
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        if kind == "follow_confirm":
            context["confirm_url"] = self._links.portal_url("follow/confirm", self._links.confirm_token(data["follower_id"]))
        rendered = self.render(kind, locale, context)

        msg = EmailMessage()
        msg["From"] = self._from
        msg["To"] = recipient
        msg["Subject"] = rendered.subject
        msg["Message-ID"] = make_msgid(domain="intercotour.local")
        msg["X-IntercoTOUR-Delivery"] = delivery["_id"]
        for name, value in headers.items():
            msg[name] = value
        msg.set_content(rendered.text)
        msg.add_alternative(rendered.html, subtype="html")
        if kind == "registration_confirmed" and data.get("check_in_code"):
            _attach_qr(msg, data["check_in_code"])
        if kind in _WITH_ICS and stop is not None:
            cancelled = kind == "stop_cancelled" or stop.status == "cancelled"
            msg.add_attachment(stop_calendar(stop, cancelled=cancelled), maintype="text", subtype="calendar",
                               filename="intercotour.ics", params={"method": "CANCEL" if cancelled else "REQUEST"})
        return msg


def _attach_qr(msg: EmailMessage, code: str) -> None:
    """The check-in QR code as an inline PNG the HTML part shows as ``cid:qr``."""
    buffer = io.BytesIO()
    segno.make(code, error="m").save(buffer, kind="png", scale=6, border=2)
    html_part = msg.get_payload()[1]
    html_part.add_related(buffer.getvalue(), maintype="image", subtype="png", cid="<qr@intercotour>",
                          filename="qr.png", disposition="inline")
