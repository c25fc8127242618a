"""Turning a queued delivery into an email: Jinja2 templates per locale, the
plain-text and HTML alternatives, attachments (.ics, QR code) and list headers."""

from __future__ import annotations

import binascii
import hashlib
import email.policy
import io
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import segno
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import escape

from notifications.domain import LIST_KINDS
from shared.auth import LinkSigner
from shared.calendar import stop_calendar
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
_WITH_ICS = {"registration_confirmed", "registration_cancelled", "stop_postponed", "stop_cancelled", "reminder"}
# A cancelled place or stop sends METHOD:CANCEL, so calendar apps remove the entry.
_CANCELLING = {"registration_cancelled", "stop_cancelled"}
# Folding at 78 columns would turn the long List-Unsubscribe URL into RFC 2047
# encoded-words that mail clients cannot use; RFC 5322 allows 998.
WIRE = email.policy.SMTP.clone(max_line_length=998)
# Stand-ins for the per-recipient parts of list mail: rendered once, replaced per recipient.
_SLOTS = {"first_name": "\x1aFIRST\x1a", "unsubscribe_url": "\x1aUNSUB\x1a", "preferences_url": "\x1aPREFS\x1a"}
_PREFIX = "\x1a"


@dataclass(frozen=True)
class Outgoing:
    """A message ready for the wire: envelope sender, recipient and the RFC 5322 bytes."""
    sender: str
    recipient: str
    raw: bytes


@dataclass(frozen=True)
class _Skeleton:
    """List mail rendered once per template, locale and shared data, with stand-ins for the personal parts."""
    head: bytes  # From, Subject (folded once)
    text: str
    html: str
    boundary: str


def message_id(delivery: dict[str, Any]) -> str:
    """Stable per delivery: a sender killed between the SMTP server's 250 and recording "sent"
    sends the delivery again, and the same Message-ID lets the receiving side drop the copy."""
    return f"<{hashlib.sha256(delivery['_id'].encode()).hexdigest()[:32]}@intercotour.local>"


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

    def outgoing(self, delivery: dict[str, Any], *, stop: StopSnapshot | None,
                 extra: dict[str, Any] | None = None, cache: dict[Any, _Skeleton | None] | None = None) -> Outgoing:
        """The message for one delivery as bytes for the wire.

        List mail (digests, announcements: the fan-out volume) is rendered once per
        template, locale and shared content (``cache``, one per claimed batch) and only
        the personal parts — first name, signed preference and unsubscribe links,
        recipient — are filled in per recipient; everything else goes through ``compose``."""
        recipient = delivery["recipient"]
        if cache is not None and delivery["kind"] in LIST_KINDS and recipient.isascii() and "\n" not in recipient:
            data = delivery.get("data") or {}
            key = (delivery["kind"], delivery["locale"], data.get("job"), data.get("variant"),
                   bool(data.get("first_name")), stop.stop_id if stop else None)
            if key not in cache:
                cache[key] = self._skeleton(delivery, stop=stop, extra=extra)
            skeleton = cache[key]
            if skeleton is not None:
                return self._fill(skeleton, delivery)
        message = self.compose(delivery, stop=stop, extra=extra)
        return Outgoing(parseaddr(message["From"])[1], recipient, message.as_bytes(policy=WIRE))

    def _skeleton(self, delivery: dict[str, Any], *, stop: StopSnapshot | None,
                  extra: dict[str, Any] | None) -> _Skeleton | None:
        kind, locale = delivery["kind"], delivery["locale"]
        data = dict(delivery.get("data") or {})
        if data.get("stop_id") and stop is None:
            raise NotReady(f"stop {data.get('stop_id')} not known yet")
        if data.get("first_name"):
            data["first_name"] = _SLOTS["first_name"]
        context: dict[str, Any] = {**data, **(extra or {}), "stop": stop, "portal": self._links.portal,
                                   "list_mail": True, "unsubscribe_url": _SLOTS["unsubscribe_url"],
                                   "preferences_url": _SLOTS["preferences_url"]}
        rendered = self.render(kind, locale, context)
        if _PREFIX in rendered.subject:
            return None  # a personal subject: compose it per recipient
        head = EmailMessage(policy=WIRE)
        head["From"] = self._from
        head["Subject"] = rendered.subject
        folded = b"".join(WIRE.fold_binary(name, value) for name, value in head.items())
        return _Skeleton(folded, rendered.text, rendered.html, f"=_{make_msgid()[1:-1].replace('@', '.')}")

    def _fill(self, skeleton: _Skeleton, delivery: dict[str, Any]) -> Outgoing:
        recipient = delivery["recipient"]
        first_name = (delivery.get("data") or {}).get("first_name") or ""
        token = self._links.unsubscribe_token(recipient)
        unsubscribe = self._links.portal_url("unsubscribe", token)
        preferences = self._links.portal_url("preferences", self._links.preferences_token(recipient))
        text = (skeleton.text.replace(_SLOTS["first_name"], first_name)
                .replace(_SLOTS["unsubscribe_url"], unsubscribe).replace(_SLOTS["preferences_url"], preferences))
        body_html = (skeleton.html.replace(_SLOTS["first_name"], str(escape(first_name)))
                     .replace(_SLOTS["unsubscribe_url"], str(escape(unsubscribe)))
                     .replace(_SLOTS["preferences_url"], str(escape(preferences))) + "\n")
        one_click = (f"<{self._links.public}/api/v1/unsubscribe?token={quote(token)}>, "
                     f"<mailto:{self._mailto}?subject=unsubscribe-{quote(token)}>")
        b = skeleton.boundary
        raw = b"".join((
            skeleton.head,
            f"To: {recipient}\r\nMessage-ID: {message_id(delivery)}\r\n"
            f"X-IntercoTOUR-Delivery: {delivery['_id']}\r\nList-Unsubscribe: {one_click}\r\n"
            f"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/alternative; boundary=\"{b}\"\r\n\r\n"
            f"--{b}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
            f"Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode(),
            _qp(text),
            f"\r\n--{b}\r\nContent-Type: text/html; charset=\"utf-8\"\r\n"
            f"Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode(),
            _qp(body_html),
            f"\r\n--{b}--\r\n".encode(),
        ))
        return Outgoing(parseaddr(self._from)[1], recipient, raw)

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
        msg["Message-ID"] = message_id(delivery)
        msg["X-IntercoTOUR-Delivery"] = delivery["_id"]
        for name, value in headers.items():
            msg[name] = value
        msg.set_content(rendered.text)
        msg.add_alternative(rendered.html, subtype="html")
        if kind == "registration_confirmed" and data.get("check_in_code"):
            _attach_qr(msg, data["check_in_code"])
        if kind in _WITH_ICS and stop is not None:
            cancelled = kind in _CANCELLING or stop.status == "cancelled"
            method = "CANCEL" if cancelled else "REQUEST"
            msg.add_attachment(stop_calendar(stop, method=method), maintype="text", subtype="calendar",
                               filename="intercotour.ics", params={"method": method})
        return msg


def _qp(text: str) -> bytes:
    """Quoted-printable body (C implementation), CRLF line ends."""
    return binascii.b2a_qp(text.encode(), istext=True).replace(b"\n", b"\r\n")


def _attach_qr(msg: EmailMessage, code: str) -> None:
    """The check-in QR code as an inline PNG the HTML part shows as ``cid:qr``."""
    buffer = io.BytesIO()
    segno.make(code, error="m").save(buffer, kind="png", scale=6, border=2)
    html_part = msg.get_payload()[1]
    html_part.add_related(buffer.getvalue(), maintype="image", subtype="png", cid="<qr@intercotour>",
                          filename="qr.png", disposition="inline")
