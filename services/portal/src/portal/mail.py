"""Local mode only: the captured emails, so a person trying the stack can read and click them."""

from __future__ import annotations

import re
from html import unescape

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from portal.web import backends, portal, render

router = APIRouter()

_LINK = re.compile(r"""https?://[^\s"'<>]+""")


def _require_local(request: Request) -> None:
    if not portal(request).settings.is_local:
        raise HTTPException(status_code=404)


def links_in(message: dict) -> list[str]:
    """Every distinct link of the message, in order (HTML first, then text)."""
    found = _LINK.findall(unescape(str(message.get("HTML") or ""))) + _LINK.findall(str(message.get("Text") or ""))
    return list(dict.fromkeys(link.rstrip(".,;)") for link in found))


def srcdoc(html: str) -> str:
    # Links open in the top window: the portal refuses to be framed, and the sandbox keeps scripts off.
    return '<base target="_top">' + html


@router.get("/mail", response_class=HTMLResponse)
async def mailbox(request: Request) -> Response:
    _require_local(request)
    return render(request, "mailbox.html", messages=await backends(request).mail.messages())


@router.get("/mail/{message_id}", response_class=HTMLResponse)
async def mail_message(request: Request, message_id: str) -> Response:
    _require_local(request)
    message = await backends(request).mail.message(message_id)
    # Emails style themselves inline; allow that on this page only (scripts stay blocked by the sandbox and CSP).
    request.state.inline_styles = True
    return render(request, "mail_message.html", message=message, links=links_in(message),
                  srcdoc=srcdoc(str(message["HTML"])) if message.get("HTML") else None)
