"""Async client for reading captured mail in tests.

It speaks only the part of Mailpit's API v1 that both real Mailpit and
``shared.localstack.mailcapture`` implement, so a test works unchanged against
either::

    async with MailCaptureClient("http://127.0.0.1:8025") as mail:
        await mail.clear()
        ...  # make the system send something
        [invite] = await mail.wait_for(lambda seen: len(seen) == 1)
        detail = await mail.message(invite["ID"])
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

Summary = dict[str, Any]

_MAX_LISTED_ON_TIMEOUT = 20


def _describe(summaries: list[Summary]) -> str:
    """A compact view of what arrived, so a timed-out wait explains itself."""
    lines = [
        f"  to={[entry['Address'] for entry in summary.get('To') or []]} subject={summary.get('Subject')!r}"
        for summary in summaries[:_MAX_LISTED_ON_TIMEOUT]
    ]
    if len(summaries) > _MAX_LISTED_ON_TIMEOUT:
        lines.append(f"  ... and {len(summaries) - _MAX_LISTED_ON_TIMEOUT} more")
    return "\n".join(lines) or "  (no messages)"


class MailCaptureClient:
    """Reads and clears the mailbox of a Mailpit-compatible server."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def __aenter__(self) -> MailCaptureClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def messages(self, limit: int = 1000) -> list[Summary]:
        """Message summaries, newest first."""
        return (await self._get("/api/v1/messages", params={"start": 0, "limit": limit}))["messages"]

    async def search(self, query: str, limit: int = 1000) -> list[Summary]:
        """Summaries matching a Mailpit query such as ``to:a@b.c subject:"Welcome"``."""
        params = {"query": query, "start": 0, "limit": limit}
        return (await self._get("/api/v1/search", params=params))["messages"]

    async def message(self, message_id: str) -> dict[str, Any]:
        return await self._get(f"/api/v1/message/{message_id}")

    async def headers(self, message_id: str) -> dict[str, list[str]]:
        """All headers; names are in Go's canonical form (``Message-Id``), as Mailpit returns them."""
        return await self._get(f"/api/v1/message/{message_id}/headers")

    async def count(self) -> int:
        return (await self._get("/api/v1/messages", params={"start": 0, "limit": 1}))["total"]

    async def clear(self) -> None:
        response = await self._http.delete("/api/v1/messages")
        response.raise_for_status()

    async def messages_to(self, address: str) -> list[Summary]:
        """Summaries whose To lists ``address`` (case-insensitive)."""
        wanted = address.lower()
        return [
            summary for summary in await self.messages()
            if any(entry["Address"].lower() == wanted for entry in summary.get("To") or [])
        ]

    async def wait_for(self, predicate: Callable[[list[Summary]], Any], timeout: float = 10.0,
                       interval: float = 0.1) -> list[Summary]:
        """Poll the summaries until ``predicate(summaries)`` is truthy and return them.

        Raises AssertionError listing what was seen if ``timeout`` seconds pass first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            seen = await self.messages()
            if predicate(seen):
                return seen
            if loop.time() >= deadline:
                raise AssertionError(
                    f"mail condition not met within {timeout}s; {len(seen)} message(s) seen:\n{_describe(seen)}")
            await asyncio.sleep(interval)

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = await self._http.get(path, params=params)
        response.raise_for_status()
        return response.json()
