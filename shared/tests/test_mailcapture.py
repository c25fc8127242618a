"""The mail-capture server (in process and as ``python -m``) and its Mailpit-compatible client."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage

import aiosmtplib
import httpx
import pytest
import pytest_asyncio

from shared.localstack.mailcapture import MailCapture
from shared.localstack.processes import free_port
from shared.testing.mail import MailCaptureClient

SENDER = "noreply@intercotour.test"
ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:Tee time\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
UNSUBSCRIBE_URL = "https://intercotour.test/unsubscribe?token=" + "t" * 90
UNSUBSCRIBE_MAILTO = "mailto:unsubscribe@intercotour.test?subject=unsubscribe"


@pytest_asyncio.fixture
async def capture() -> AsyncIterator[MailCapture]:
    server = MailCapture(smtp_port=0, http_port=0)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def mail(capture: MailCapture) -> AsyncIterator[MailCaptureClient]:
    async with MailCaptureClient(capture.http_url) as client:
        yield client


def simple_message(to: str, subject: str, body: str = "Hello.", cc: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"IntercoTOUR <{SENDER}>"
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message.set_content(body)
    return message


def tee_time_invitation() -> EmailMessage:
    message = simple_message("Ada Player <ada@example.org>", "Your tee time", "Hello Ada, your tee time is 09:30.")
    message.add_alternative("<p>Hello Ada, your tee time is <b>09:30</b>.</p>", subtype="html")
    message.add_attachment(ICS, maintype="text", subtype="calendar", filename="teetime.ics")
    return message


async def send(capture: MailCapture, message: EmailMessage) -> None:
    await aiosmtplib.send(message, hostname="127.0.0.1", port=capture.smtp_port)


async def test_multipart_message_is_listed_with_mailpit_summary_fields(
        capture: MailCapture, mail: MailCaptureClient) -> None:
    await send(capture, tee_time_invitation())

    [summary] = await mail.messages()

    assert summary["From"] == {"Name": "IntercoTOUR", "Address": SENDER}
    assert summary["To"] == [{"Name": "Ada Player", "Address": "ada@example.org"}]
    assert summary["Cc"] == [] and summary["Bcc"] == []
    assert summary["Subject"] == "Your tee time"
    assert summary["Snippet"] == "Hello Ada, your tee time is 09:30."
    assert summary["Attachments"] == 1
    assert summary["Size"] == len(capture.messages[0].raw)
    assert summary["Created"].endswith("Z")
    assert await mail.count() == 1


async def test_message_detail_and_attachment_part(capture: MailCapture, mail: MailCaptureClient) -> None:
    await send(capture, tee_time_invitation())
    [summary] = await mail.messages()

    detail = await mail.message(summary["ID"])

    assert detail["Text"] == "Hello Ada, your tee time is 09:30.\n"
    assert "<b>09:30</b>" in detail["HTML"]
    assert detail["Attachments"] == [{
        "PartID": "2", "FileName": "teetime.ics", "ContentType": "text/calendar", "ContentID": "", "Size": len(ICS),
    }]
    assert detail["Inline"] == []
    async with httpx.AsyncClient(base_url=capture.http_url) as http:
        part = await http.get(f"/api/v1/message/{summary['ID']}/part/2")
        unknown = await http.get("/api/v1/message/no-such-id")
    assert part.status_code == 200
    assert part.content == ICS
    assert part.headers["content-type"].startswith("text/calendar")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/json"


async def test_headers_are_unfolded_and_grouped_by_name(capture: MailCapture, mail: MailCaptureClient) -> None:
    raw = (
        f"From: {SENDER}\r\nTo: ada@example.org\r\nSubject: Newsletter\r\n"
        f"List-Unsubscribe: <{UNSUBSCRIBE_URL}>,\r\n <{UNSUBSCRIBE_MAILTO}>\r\n"
        "X-Intercotour-Tag: first\r\nX-Intercotour-Tag: second\r\n\r\nNews.\r\n"
    ).encode()
    await aiosmtplib.send(raw, sender=SENDER, recipients=["ada@example.org"], hostname="127.0.0.1",
                          port=capture.smtp_port)
    [summary] = await mail.messages()

    headers = await mail.headers(summary["ID"])

    assert headers["List-Unsubscribe"] == [f"<{UNSUBSCRIBE_URL}>, <{UNSUBSCRIBE_MAILTO}>"]
    assert headers["X-Intercotour-Tag"] == ["first", "second"]
    assert headers["Subject"] == ["Newsletter"]


async def test_search_by_recipient_subject_and_words(capture: MailCapture, mail: MailCaptureClient) -> None:
    await send(capture, simple_message("ada@example.org", "Tee time reminder", "Bring your clubs."))
    await send(capture, simple_message("bea@example.org", "Tee time reminder", "Bring an umbrella."))
    await send(capture, simple_message("ada@example.org", "Results", "You finished third.", cc="bea@example.org"))

    def subjects_and_recipients(found: list[dict]) -> list[tuple[str, str]]:
        return [(summary["Subject"], summary["To"][0]["Address"]) for summary in found]

    assert subjects_and_recipients(await mail.search("to:bea@example.org")) == [
        ("Tee time reminder", "bea@example.org")]
    assert subjects_and_recipients(await mail.search('to:ada@example.org subject:"tee time"')) == [
        ("Tee time reminder", "ada@example.org")]
    assert subjects_and_recipients(await mail.search("umbrella")) == [("Tee time reminder", "bea@example.org")]
    assert [summary["Subject"] for summary in await mail.messages_to("ADA@example.org")] == [
        "Results", "Tee time reminder"]


async def test_clear_and_delete_by_ids(capture: MailCapture, mail: MailCaptureClient) -> None:
    for subject in ("one", "two", "three"):
        await send(capture, simple_message("ada@example.org", subject))
    newest, _, oldest = await mail.messages()

    async with httpx.AsyncClient(base_url=capture.http_url) as http:
        response = await http.request("DELETE", "/api/v1/messages", json={"IDs": [newest["ID"], oldest["ID"]]})
    assert response.status_code == 200
    assert [summary["Subject"] for summary in await mail.messages()] == ["two"]

    await mail.clear()
    assert await mail.count() == 0
    assert capture.messages == []


@pytest.mark.parametrize(("recipient", "code", "reply"), [
    ("tempfail-1@example.org", 451, "4.3.0 Temporary failure (capture test)"),
    ("reject.me@example.org", 550, "5.1.1 Mailbox unavailable (capture test)"),
])
async def test_injected_recipient_failures(capture: MailCapture, mail: MailCaptureClient,
                                           recipient: str, code: int, reply: str) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=capture.smtp_port) as client:
        await client.mail(SENDER)
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await client.rcpt(recipient)
    assert (refused.value.code, refused.value.message) == (code, reply)

    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as all_refused:
        await send(capture, simple_message(recipient, "Never stored"))
    assert [error.code for error in all_refused.value.recipients] == [code]
    assert await mail.count() == 0


async def test_refused_recipient_does_not_block_the_others(capture: MailCapture, mail: MailCaptureClient) -> None:
    errors, _ = await aiosmtplib.send(
        simple_message("ada@example.org, reject@example.org", "Partly delivered"),
        hostname="127.0.0.1", port=capture.smtp_port)

    assert errors["reject@example.org"].code == 550
    [stored] = capture.messages
    assert stored.envelope_to == ("ada@example.org",)
    assert (await mail.messages())[0]["Subject"] == "Partly delivered"


async def test_concurrent_connections_store_each_message_once(capture: MailCapture, mail: MailCaptureClient) -> None:
    connections, per_connection = 20, 10

    async def deliver(connection: int) -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=capture.smtp_port) as client:
            for index in range(per_connection):
                await client.send_message(simple_message("ada@example.org", f"message {connection}-{index}"))

    await asyncio.gather(*(deliver(connection) for connection in range(connections)))

    expected = sorted(f"message {c}-{i}" for c in range(connections) for i in range(per_connection))
    listed = await mail.messages()
    assert sorted(summary["Subject"] for summary in listed) == expected
    assert len({summary["ID"] for summary in listed}) == connections * per_connection


async def test_wait_for_reports_what_it_saw_on_timeout(capture: MailCapture, mail: MailCaptureClient) -> None:
    await send(capture, simple_message("ada@example.org", "Only this one"))

    assert len(await mail.wait_for(lambda seen: len(seen) == 1, timeout=1.0)) == 1
    with pytest.raises(AssertionError, match="Only this one"):
        await mail.wait_for(lambda seen: len(seen) == 2, timeout=0.3, interval=0.05)


async def test_module_runs_as_a_process_and_exits_cleanly_on_sigterm() -> None:
    smtp_port, http_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.localstack.mailcapture",
        "--host", "127.0.0.1", "--smtp-port", str(smtp_port), "--http-port", str(http_port))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            ready = await wait_until_ready(http)
            assert ready.json() == {"status": "ok"}
            await aiosmtplib.send(simple_message("ada@example.org", "Via process"),
                                  hostname="127.0.0.1", port=smtp_port)
            assert (await http.get("/api/v1/info")).json() == {"Version": "intercotour-capture", "Messages": 1}

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=5) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_until_ready(http: httpx.AsyncClient, timeout: float = 10.0) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await http.get("/ready")
        except httpx.TransportError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
