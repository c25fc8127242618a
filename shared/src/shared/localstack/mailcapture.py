"""Local mail-capture server: SMTP in, a Mailpit-compatible HTTP API out.

One asyncio loop runs both an aiosmtpd SMTP server and a uvicorn/FastAPI HTTP
server. Every accepted message is kept in memory (the newest ``max_messages``)
and the HTTP API implements the subset of Mailpit's API v1 the project's tests
use, so the same tests read mail from this server or from a real Mailpit
(docker-compose)::

    GET    /api/v1/messages?start=0&limit=50    summaries, newest first
    GET    /api/v1/search?query=...              to:addr from:addr subject:"text" words (ANDed)
    GET    /api/v1/message/{ID}                  ID may be "latest", as in Mailpit
    GET    /api/v1/message/{ID}/headers          header values unfolded, Go-canonical names
    GET    /api/v1/message/{ID}/part/{PartID}    attachment bytes
    GET    /api/v1/message/{ID}/raw              RFC 5322 source
    DELETE /api/v1/messages                      all, or only the body's {"IDs": [...]}
    GET    /api/v1/info, /ready, /health

Failure injection, for testing how senders handle SMTP errors. It is decided
at RCPT by the recipient's local part:

    tempfail...@any  ->  451 4.3.0 Temporary failure (capture test)
    reject...@any    ->  550 5.1.1 Mailbox unavailable (capture test)

Refused recipients are not stored, and a message all of whose recipients were
refused is never accepted. Every other recipient is accepted.

Run it with::

    python -m shared.localstack.mailcapture --host 127.0.0.1 --smtp-port 1025 --http-port 8025

(environment fallbacks: MAILCAPTURE_HOST, MAILCAPTURE_SMTP_PORT,
MAILCAPTURE_HTTP_PORT); SIGINT or SIGTERM stops it cleanly. To embed it, use
``MailCapture``: port 0 picks a free port, read back from ``smtp_port`` and
``http_port`` after ``start()``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import os
import re
import signal
import socket
import sys
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from functools import cached_property, lru_cache
from typing import Any

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

VERSION = "intercotour-capture"
DEFAULT_MAX_MESSAGES = 50_000
DATA_SIZE_LIMIT = 25 * 1024 * 1024
SNIPPET_LENGTH = 250
TEMPFAIL_REPLY = "451 4.3.0 Temporary failure (capture test)"
REJECT_REPLY = "550 5.1.1 Mailbox unavailable (capture test)"

Address = dict[str, str]


# --------------------------------------------------------------------------- parsing


@lru_cache(maxsize=4096)
def _parsed_header(name: str, value: str) -> Any:
    return policy.default.header_fetch_parse(name, value)


class _HeaderCachingPolicy(EmailPolicy):
    """policy.default, except that a header is parsed once rather than on every access.

    Walking a MIME tree re-reads each part's Content-Type many times, and the
    structured parse dominates the cost. Parsed headers are immutable, so sharing is safe.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        return _parsed_header(name, value)


_POLICY = _HeaderCachingPolicy()


def _parse(raw: bytes, *, headers_only: bool = False) -> EmailMessage:
    message = BytesParser(policy=_POLICY).parsebytes(raw, headersonly=headers_only)
    assert isinstance(message, EmailMessage)
    return message


def _clean(text: str) -> str:
    """Undo the parser's surrogate escapes: raw 8-bit headers are nearly always UTF-8,
    and JSON encoding would choke on the lone surrogates."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_FOLD = re.compile(r"[ \t]*\r?\n[ \t]*")


def _unfold(value: str) -> str:
    return _clean(_FOLD.sub(" ", value).strip())


def _decode_words(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError):
        return value


class _RawHeaders:
    """A message's own header values, decoded by hand.

    policy.default's structured parse of an address header costs about 0.1 ms,
    which would dominate listing or searching thousands of messages.
    """

    def __init__(self, message: EmailMessage) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in message.raw_items():
            self._values.setdefault(name.strip().lower(), []).append(_unfold(value))

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._values

    def text(self, name: str) -> str:
        values = self._values.get(name.lower())
        return _decode_words(values[0]) if values else ""

    def addresses(self, name: str) -> list[Address]:
        return [
            {"Name": _decode_words(display_name), "Address": address}
            for display_name, address in getaddresses(self._values.get(name.lower(), []))
            if address
        ]


def _canonical_header_name(name: str) -> str:
    """Go's textproto canonical form, which Mailpit's headers endpoint returns."""
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.strip().split("-"))


def _all_headers(message: EmailMessage) -> dict[str, list[str]]:
    collected: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        collected.setdefault(_canonical_header_name(name), []).append(_unfold(value))
    return dict(sorted(collected.items()))


def _text_of(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except LookupError:  # unknown charset: UTF-8 is the best remaining guess
        content = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    return content.replace("\r\n", "\n")


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    return _text_of(part) if part is not None else ""


_INVISIBLE_HTML = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"<[^>]*>")


def _readable_text(message: EmailMessage) -> str:
    """The text/plain body, else the text/html body stripped of markup."""
    plain = _body(message, "plain")
    if plain:
        return plain
    markup = _INVISIBLE_HTML.sub(" ", _body(message, "html"))
    return html.unescape(_HTML_TAG.sub(" ", markup))


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sent_at(headers: _RawHeaders, fallback: datetime) -> str:
    try:
        sent = parsedate_to_datetime(headers.text("Date"))
    except (TypeError, ValueError):
        sent = fallback
    if sent.tzinfo is None:  # "-0000" dates parse naive; RFC 3339 needs an offset
        sent = sent.replace(tzinfo=timezone.utc)
    return sent.isoformat()


@dataclass(frozen=True)
class MessagePart:
    """An attachment or inline file of a message, addressed by a Mailpit-style PartID."""

    part_id: str
    file_name: str
    content_type: str
    content_id: str
    inline: bool
    content: bytes

    def describe(self) -> dict[str, Any]:
        return {
            "PartID": self.part_id,
            "FileName": self.file_name,
            "ContentType": self.content_type,
            "ContentID": self.content_id,
            "Size": len(self.content),
        }


def _leaves(part: EmailMessage, part_id: str = "") -> Iterator[tuple[str, EmailMessage]]:
    if part.get_content_maintype() != "multipart":
        yield part_id or "1", part
        return
    for index, child in enumerate(part.iter_parts(), start=1):
        yield from _leaves(child, f"{part_id}.{index}" if part_id else str(index))


def _file_leaves(message: EmailMessage) -> Iterator[tuple[str, EmailMessage]]:
    """Leaves that are files: they carry a filename or are explicitly attachments."""
    for part_id, part in _leaves(message):
        if part.get_filename() or part.get_content_disposition() == "attachment":
            yield part_id, part


def _is_inline(part: EmailMessage) -> bool:
    return part.get_content_disposition() == "inline"


def _content_bytes(part: EmailMessage) -> bytes:
    if part.get_content_maintype() == "message":  # a forwarded message/rfc822 is not "decodable"
        return part.get_payload(0).as_bytes()
    return part.get_payload(decode=True) or b""


def _file_parts(message: EmailMessage) -> list[MessagePart]:
    return [
        MessagePart(
            part_id=part_id,
            file_name=_clean(part.get_filename() or ""),
            content_type=part.get_content_type(),
            content_id=_RawHeaders(part).text("Content-ID").strip("<>"),
            inline=_is_inline(part),
            content=_content_bytes(part),
        )
        for part_id, part in _file_leaves(message)
    ]


# --------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class _ContentDigest:
    """What listing and searching need from the body, kept so the parsed tree can be dropped."""

    snippet: str
    attachments: int
    searchable_text: str


@dataclass(eq=False)
class CapturedMessage:
    """One accepted SMTP transaction. Parsing waits for the first API read, and then
    reads the headers alone when that is enough (a ``to:`` search over every message)."""

    id: str
    created: datetime
    envelope_from: str
    envelope_to: tuple[str, ...]
    raw: bytes

    @classmethod
    def received(cls, envelope_from: str, envelope_to: Iterable[str], raw: bytes) -> CapturedMessage:
        return cls(str(uuid.uuid4()), datetime.now(timezone.utc), envelope_from, tuple(envelope_to), raw)

    def email(self) -> EmailMessage:
        return _parse(self.raw)

    @cached_property
    def summary(self) -> dict[str, Any]:
        return {
            **self._addressing,
            "Created": _rfc3339(self.created),
            "Size": len(self.raw),
            "Snippet": self._content.snippet,
            "Attachments": self._content.attachments,
        }

    def searchable(self, field: str) -> str:
        """Lowercased text for a search field: "to", "from", "subject", or "" (subject and body)."""
        if field == "":
            return self._content.searchable_text
        return self._searchable_headers[field]

    def detail(self) -> dict[str, Any]:
        message = self.email()
        files = _file_parts(message)
        return {
            **self._addressing,
            "Date": _sent_at(_RawHeaders(message), self.created),
            "Text": _body(message, "plain"),
            "HTML": _body(message, "html"),
            "Size": len(self.raw),
            "Attachments": [part.describe() for part in files if not part.inline],
            "Inline": [part.describe() for part in files if part.inline],
        }

    def headers(self) -> dict[str, list[str]]:
        return _all_headers(_parse(self.raw, headers_only=True))

    def part(self, part_id: str) -> MessagePart | None:
        return next((part for part in _file_parts(self.email()) if part.part_id == part_id), None)

    @cached_property
    def _addressing(self) -> dict[str, Any]:
        headers = _RawHeaders(_parse(self.raw, headers_only=True))
        senders = headers.addresses("From")
        if not senders and self.envelope_from and self.envelope_from != "<>":
            senders = [{"Name": "", "Address": self.envelope_from}]
        to, cc, bcc = headers.addresses("To"), headers.addresses("Cc"), headers.addresses("Bcc")
        if "To" not in headers:
            to = [{"Name": "", "Address": rcpt} for rcpt in self.envelope_to]
        else:  # like Mailpit, report envelope recipients the headers hide as Bcc
            named = {entry["Address"].lower() for entry in [*to, *cc, *bcc]}
            bcc += [{"Name": "", "Address": rcpt} for rcpt in self.envelope_to if rcpt.lower() not in named]
        return {
            "ID": self.id,
            "MessageID": headers.text("Message-ID").strip("<>"),
            "From": senders[0] if senders else None,
            "To": to,
            "Cc": cc,
            "Bcc": bcc,
            "ReplyTo": headers.addresses("Reply-To"),
            "Subject": headers.text("Subject"),
        }

    @cached_property
    def _searchable_headers(self) -> dict[str, str]:
        def people(entries: list[Address]) -> str:
            return " ".join(f"{entry['Name']} <{entry['Address']}>" for entry in entries).lower()

        sender = self._addressing["From"]
        return {
            "to": people(self._addressing["To"]),
            "from": people([sender] if sender else []),
            "subject": self._addressing["Subject"].lower(),
        }

    @cached_property
    def _content(self) -> _ContentDigest:
        message = self.email()
        text = _readable_text(message)
        return _ContentDigest(
            snippet=" ".join(text.split())[:SNIPPET_LENGTH],
            attachments=sum(1 for _, part in _file_leaves(message) if not _is_inline(part)),
            searchable_text=f"{self._addressing['Subject']}\n{text}".lower(),
        )


class MessageStore:
    """Messages in arrival order, capped by dropping the oldest. Loop-confined: no locking."""

    def __init__(self, max_messages: int = DEFAULT_MAX_MESSAGES) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        self._max_messages = max_messages
        self._messages: OrderedDict[str, CapturedMessage] = OrderedDict()

    def __len__(self) -> int:
        return len(self._messages)

    def add(self, message: CapturedMessage) -> None:
        self._messages[message.id] = message
        while len(self._messages) > self._max_messages:
            self._messages.popitem(last=False)

    def get(self, message_id: str) -> CapturedMessage | None:
        return self._messages.get(message_id)

    def latest(self) -> CapturedMessage | None:
        return next(reversed(self._messages.values()), None)

    def oldest_first(self) -> list[CapturedMessage]:
        return list(self._messages.values())

    def newest_first(self) -> list[CapturedMessage]:
        return list(reversed(self._messages.values()))

    def delete(self, message_ids: Iterable[str]) -> None:
        for message_id in message_ids:
            self._messages.pop(message_id, None)

    def clear(self) -> None:
        self._messages.clear()


# --------------------------------------------------------------------------- search

_SEARCHABLE_HEADERS = ("to", "from", "subject")
_TERM = re.compile(r'(?:(?P<field>[A-Za-z]+):)?(?:"(?P<quoted>[^"]*)"|(?P<bare>\S+))')


def parse_query(query: str) -> list[tuple[str, str]]:
    """Mailpit-style terms as (field, lowercased needle); field "" means subject or body."""
    terms = []
    for match in _TERM.finditer(query):
        field = (match["field"] or "").lower()
        needle = (match["quoted"] if match["quoted"] is not None else match["bare"]).lower()
        if field and field not in _SEARCHABLE_HEADERS:  # e.g. "http://x" is a word, not a field
            field, needle = "", f"{field}:{needle}"
        if needle:
            terms.append((field, needle))
    return terms


def matches(message: CapturedMessage, terms: list[tuple[str, str]]) -> bool:
    """All terms match. Header terms are checked first: they avoid parsing the body."""
    ordered = sorted(terms, key=lambda term: term[0] == "")
    return all(needle in message.searchable(field) for field, needle in ordered)


# --------------------------------------------------------------------------- SMTP


def _injected_failure(address: str) -> str | None:
    local_part = address.rpartition("@")[0].strip('"').lower()
    if local_part.startswith("tempfail"):
        return TEMPFAIL_REPLY
    if local_part.startswith("reject"):
        return REJECT_REPLY
    return None


class _CaptureHandler:
    """aiosmtpd handler: applies failure injection at RCPT and stores at DATA."""

    def __init__(self, store: MessageStore) -> None:
        self._store = store

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        failure = _injected_failure(address)
        if failure:
            return failure
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = CapturedMessage.received(envelope.mail_from or "", envelope.rcpt_tos, raw)
        self._store.add(message)
        return f"250 2.0.0 Ok: queued as {message.id}"


# --------------------------------------------------------------------------- HTTP


def _page(store: MessageStore, matching: list[CapturedMessage], start: int, limit: int) -> dict[str, Any]:
    page = matching[start:start + limit]
    return {
        "total": len(store),
        "unread": 0,
        "count": len(page),
        "messages_count": len(matching),
        "start": start,
        "messages": [message.summary for message in page],
    }


async def _ids_to_delete(request: Request) -> list[str]:
    """The IDs of a Mailpit ``{"IDs": [...]}`` body; empty (meaning "all") without a body."""
    body = await request.body()
    if not body.strip():
        return []
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    ids = payload.get("IDs", []) if isinstance(payload, dict) else None
    if not isinstance(ids, list):
        raise HTTPException(400, 'Expected a JSON body like {"IDs": ["..."]}')
    return [str(message_id) for message_id in ids]


def create_app(store: MessageStore) -> FastAPI:
    """The Mailpit-compatible API over ``store``.

    Handlers are ``async`` on purpose: they then run on the loop that also runs
    SMTP, so the store is never touched from two threads.
    """
    app = FastAPI(title="IntercoTOUR mail capture", docs_url=None, redoc_url=None, openapi_url=None)

    def find(message_id: str) -> CapturedMessage:
        message = store.latest() if message_id == "latest" else store.get(message_id)
        if message is None:
            raise HTTPException(404, "Message not found")
        return message

    @app.get("/api/v1/messages")
    async def list_messages(start: int = Query(0, ge=0), limit: int = Query(50, ge=1)) -> JSONResponse:
        return JSONResponse(_page(store, store.newest_first(), start, limit))

    @app.get("/api/v1/search")
    async def search(query: str = "", start: int = Query(0, ge=0),
                     limit: int = Query(50, ge=1)) -> JSONResponse:
        terms = parse_query(query)
        found = [message for message in store.newest_first() if matches(message, terms)]
        return JSONResponse(_page(store, found, start, limit))

    @app.delete("/api/v1/messages")
    async def delete_messages(request: Request) -> PlainTextResponse:
        ids = await _ids_to_delete(request)
        if ids:
            store.delete(ids)
        else:
            store.clear()
        return PlainTextResponse("ok")

    @app.get("/api/v1/message/{message_id}")
    async def message_detail(message_id: str) -> JSONResponse:
        return JSONResponse(find(message_id).detail())

    @app.get("/api/v1/message/{message_id}/headers")
    async def message_headers(message_id: str) -> JSONResponse:
        return JSONResponse(find(message_id).headers())

    @app.get("/api/v1/message/{message_id}/part/{part_id}")
    async def message_part(message_id: str, part_id: str) -> Response:
        part = find(message_id).part(part_id)
        if part is None:
            raise HTTPException(404, "Part not found")
        return Response(part.content, media_type=part.content_type)

    @app.get("/api/v1/message/{message_id}/raw")
    async def message_raw(message_id: str) -> Response:
        return Response(find(message_id).raw, media_type="text/plain; charset=utf-8")

    @app.get("/api/v1/info")
    async def info() -> dict[str, Any]:
        return {"Version": VERSION, "Messages": len(store)}

    @app.get("/ready")
    @app.get("/health")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn.Server minus its signal capture: whoever embeds the server owns the signals
    (and uvicorn would re-raise SIGTERM at exit, killing the process with a non-zero code)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listening_socket(host: str, port: int) -> socket.socket:
    """Bind before handing the socket to uvicorn: errors surface here as OSError
    (uvicorn would sys.exit), and port 0 is resolved right away."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=1024)


# --------------------------------------------------------------------------- server


_WILDCARD_TO_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


class MailCapture:
    """SMTP capture plus Mailpit-compatible HTTP API, both on the running event loop."""

    def __init__(self, host: str = "127.0.0.1", smtp_port: int = 1025, http_port: int = 8025,
                 max_messages: int = DEFAULT_MAX_MESSAGES) -> None:
        self.host = host
        self.store = MessageStore(max_messages)
        self._smtp_port = smtp_port
        self._http_port = http_port
        self._smtp_server: asyncio.Server | None = None
        self._smtp_connections: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self._http_server: _EmbeddedUvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None

    @property
    def smtp_port(self) -> int:
        return self._smtp_port

    @property
    def http_port(self) -> int:
        return self._http_port

    @property
    def http_url(self) -> str:
        host = _WILDCARD_TO_LOOPBACK.get(self.host, self.host)
        return f"http://[{host}]:{self.http_port}" if ":" in host else f"http://{host}:{self.http_port}"

    @property
    def messages(self) -> list[CapturedMessage]:
        """Stored messages, oldest first."""
        return self.store.oldest_first()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        handler = _CaptureHandler(self.store)
        self._smtp_server = await loop.create_server(
            lambda: self._smtp_protocol(handler, loop), self.host, self._smtp_port, backlog=1024)
        self._smtp_port = self._smtp_server.sockets[0].getsockname()[1]
        try:
            await self._start_http()
        except BaseException:
            await self._stop_smtp()
            raise

    async def stop(self) -> None:
        await self._stop_http()
        await self._stop_smtp()

    async def __aenter__(self) -> MailCapture:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _smtp_protocol(self, handler: _CaptureHandler, loop: asyncio.AbstractEventLoop) -> SMTP:
        protocol = SMTP(
            handler,
            hostname="localhost",  # the default, socket.getfqdn(), can stall on DNS
            data_size_limit=DATA_SIZE_LIMIT,
            enable_SMTPUTF8=True,
            auth_require_tls=False,
            loop=loop,
        )
        self._smtp_connections.add(protocol)
        return protocol

    async def _start_http(self) -> None:
        sock = _listening_socket(self.host, self._http_port)
        self._http_port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(self.store), log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=2)
        self._http_server = _EmbeddedUvicorn(config)
        self._http_task = asyncio.create_task(self._http_server.serve(sockets=[sock]))
        while not self._http_server.started:
            if self._http_task.done():
                self._http_task.result()
                raise RuntimeError("mail capture HTTP server exited during startup")
            await asyncio.sleep(0.01)

    async def _stop_http(self) -> None:
        if self._http_server is None or self._http_task is None:
            return
        self._http_server.should_exit = True
        await self._http_task
        self._http_server = self._http_task = None

    async def _stop_smtp(self) -> None:
        if self._smtp_server is None:
            return
        self._smtp_server.close()
        # Python 3.11's wait_closed() does not wait for open connections: close them ourselves.
        for protocol in list(self._smtp_connections):
            if protocol.transport is not None:
                protocol.transport.close()
        await self._smtp_server.wait_closed()
        self._smtp_server = None


# --------------------------------------------------------------------------- command line


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m shared.localstack.mailcapture",
                                     description="Capture SMTP mail and serve a Mailpit-compatible API.")
    parser.add_argument("--host", default=env.get("MAILCAPTURE_HOST", "127.0.0.1"))
    parser.add_argument("--smtp-port", type=int, default=int(env.get("MAILCAPTURE_SMTP_PORT", "1025")))
    parser.add_argument("--http-port", type=int, default=int(env.get("MAILCAPTURE_HTTP_PORT", "8025")))
    parser.add_argument("--max-messages", type=int, default=DEFAULT_MAX_MESSAGES)
    return parser.parse_args(argv)


async def _serve_until_signalled(capture: MailCapture) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await capture.start()
    print(f"mail capture: SMTP {capture.host}:{capture.smtp_port}, HTTP {capture.http_url}",
          file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await capture.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    capture = MailCapture(args.host, args.smtp_port, args.http_port, args.max_messages)
    asyncio.run(_serve_until_signalled(capture))
    return 0


if __name__ == "__main__":
    sys.exit(main())
