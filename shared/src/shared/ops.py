"""Operator endpoints every consuming service exposes: list and replay its dead letters (staff)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from shared.auth import JwtVerifier
from shared.runtime import ServiceRuntime


def dead_letter_router(runtime: ServiceRuntime, verifier: JwtVerifier) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["operations"])

    @router.get("/dead-letters")
    async def list_dead_letters(request: Request, status: str | None = None, limit: int = 100) -> dict[str, Any]:
        verifier.require(request).require_staff()
        items = await runtime.dead_letters.list(status=status, limit=min(max(limit, 1), 500))
        return {"items": items, "count": len(items)}

    @router.post("/dead-letters/{dead_letter_id}/replay")
    async def replay_dead_letter(dead_letter_id: str, request: Request) -> dict[str, Any]:
        verifier.require(request).require_staff()
        outcome = await runtime.consumer.replay(dead_letter_id)
        return {"id": dead_letter_id, "outcome": outcome}

    return router
