"""HTTP in: the replays API under /api/v1 (request models, who may call what, JSON out)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.auth import JwtVerifier
from shared.contracts.replays import Chapter, Provider, Publication
from shared.contracts.venues import SessionKind
from shared.errors import NotFound
from shared.uow import Tx, UnitOfWork
from replays import handlers
from replays.domain import MAX_DURATION_S, Replay, Speaker, StopView
from replays.handlers import Ctx, Loaded
from replays.repository import Catalogue, CatalogueQuery

Title = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=5000)]
VideoUrl = Annotated[str, Field(min_length=1, max_length=2000)]
Duration = Annotated[int, Field(ge=1, le=MAX_DURATION_S)]
Speakers = Annotated[list[Speaker], Field(max_length=50)]
Reason = Annotated[str, Field(max_length=500)]
Id = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplayIn(_Strict):
    stop_id: Id
    session_id: Id | None = None
    title: Title
    description: Description = ""
    provider: Provider
    url: VideoUrl
    duration_s: Duration
    speakers: Speakers = []


class ReplayPatch(_Strict):
    session_id: Id | None = None
    title: Title | None = None
    description: Description | None = None
    provider: Provider | None = None
    url: VideoUrl | None = None
    duration_s: Duration | None = None
    speakers: Speakers | None = None

    @model_validator(mode="after")
    def _only_session_may_be_cleared(self) -> "ReplayPatch":
        nulls = sorted(name for name in self.model_fields_set if name != "session_id" and getattr(self, name) is None)
        if nulls:
            raise ValueError(f"may not be null: {', '.join(nulls)}")
        return self


class ChapterIn(_Strict):
    at_s: int = Field(ge=0, le=MAX_DURATION_S)
    title: Title


class ScheduleIn(_Strict):
    publish_at: AwareDatetime


class ReasonIn(_Strict):
    reason: Reason = ""


def replay_json(replay: Replay, stop: StopView | None) -> dict[str, Any]:
    """A replay as clients see it, with its stop's place and theme from the local read model."""
    place = stop.model_dump(include={"season", "region", "city", "theme"}) if stop else dict.fromkeys(
        ("season", "region", "city", "theme"))
    return {**replay.model_dump(mode="json"), **place}


def build_router(uow: UnitOfWork, catalogue: Catalogue, verifier: JwtVerifier,
                 make_ctx: Callable[[Tx], Ctx]) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["replays"])

    async def run(use_case: Callable[..., Awaitable[Loaded]], *args: Any) -> dict[str, Any]:
        async def work(tx: Tx) -> Loaded:
            return await use_case(make_ctx(tx), *args)

        return replay_json(*await uow.run(work))

    @router.post("/replays", status_code=201)
    async def create(body: ReplayIn, request: Request) -> dict[str, Any]:
        fields = body.model_dump(exclude={"speakers"})
        return await run(lambda ctx, p: handlers.create_replay(ctx, p, speakers=body.speakers, **fields),
                         verifier.require(request))

    @router.get("/replays")
    async def search(
        request: Request,
        season: Annotated[int | None, Query(ge=2000, le=2100)] = None,
        region: Annotated[str | None, Query(max_length=100)] = None,
        stop_id: Annotated[str | None, Query(max_length=64)] = None,
        session_kind: SessionKind | None = None,
        status: Publication = "published",
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        territory_id = None
        if status != "published":
            principal = verifier.require(request)
            territory_id = None if principal.is_staff else principal.territory_id
        query = CatalogueQuery(season=season, region=region, stop_id=stop_id, session_kind=session_kind,
                               publication=status, territory_id=territory_id)
        replays, total = await catalogue.search(query, page=page, page_size=page_size)
        stops = await catalogue.stops({r.stop_id for r in replays})
        return {"items": [replay_json(r, stops.get(r.stop_id)) for r in replays],
                "page": page, "page_size": page_size, "total": total}

    @router.get("/replays/{replay_id}")
    async def get(replay_id: str, request: Request) -> dict[str, Any]:
        replay = await catalogue.replay(replay_id)
        stop = (await catalogue.stops({replay.stop_id})).get(replay.stop_id) if replay else None
        if replay is None or (replay.publication != "published" and not _may_manage(verifier, request, stop)):
            # Unpublished replays do not exist for those who may not manage them.
            raise NotFound(f"no replay {replay_id!r}")
        return replay_json(replay, stop)

    @router.patch("/replays/{replay_id}")
    async def update(replay_id: str, body: ReplayPatch, request: Request) -> dict[str, Any]:
        return await run(handlers.update_replay, verifier.require(request), replay_id,
                         body.model_dump(exclude_unset=True))

    @router.put("/replays/{replay_id}/chapters")
    async def chapters(replay_id: str, body: Annotated[list[ChapterIn], Body(max_length=200)],
                       request: Request) -> dict[str, Any]:
        return await run(handlers.set_chapters, verifier.require(request), replay_id,
                         [Chapter(**c.model_dump()) for c in body])

    @router.post("/replays/{replay_id}/ready")
    async def ready(replay_id: str, request: Request) -> dict[str, Any]:
        return await run(handlers.mark_ready, verifier.require(request), replay_id)

    @router.post("/replays/{replay_id}/fail")
    async def fail(replay_id: str, request: Request, body: ReasonIn | None = None) -> dict[str, Any]:
        return await run(handlers.mark_failed, verifier.require(request), replay_id, (body or ReasonIn()).reason)

    @router.post("/replays/{replay_id}/schedule")
    async def schedule(replay_id: str, body: ScheduleIn, request: Request) -> dict[str, Any]:
        return await run(handlers.schedule, verifier.require(request), replay_id, body.publish_at)

    @router.post("/replays/{replay_id}/unschedule")
    async def unschedule(replay_id: str, request: Request) -> dict[str, Any]:
        return await run(handlers.unschedule, verifier.require(request), replay_id)

    @router.post("/replays/{replay_id}/publish")
    async def publish(replay_id: str, request: Request) -> dict[str, Any]:
        return await run(handlers.publish, verifier.require(request), replay_id)

    @router.post("/replays/{replay_id}/unpublish")
    async def unpublish(replay_id: str, request: Request, body: ReasonIn | None = None) -> dict[str, Any]:
        return await run(handlers.unpublish, verifier.require(request), replay_id, (body or ReasonIn()).reason)

    return router


def _may_manage(verifier: JwtVerifier, request: Request, stop: StopView | None) -> bool:
    principal = verifier.from_request(request)
    if principal is None:
        return False
    return principal.is_staff or (stop is not None and stop.territory_id == principal.territory_id)
