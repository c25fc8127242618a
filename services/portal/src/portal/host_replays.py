"""Host pages for the replays of a stop: create, chapters, processing and publication."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from portal.clients import ServiceError
from portal.host import converted, owned_stop
from portal.security import csrf_protect
from portal.values import BadValue, format_chapters, parse_chapters, parse_clock, parse_replay_speakers, paris_datetime
from portal.web import Form, User, backends, flash, read_form, redirect, render, require_user, submit

router = APIRouter(prefix="/host", dependencies=[Depends(csrf_protect)])

REPLAY_FIELDS = {
    "session_id": "field.session", "title": "field.title", "description": "field.description",
    "provider": "field.provider", "url": "field.url", "duration_s": "field.duration", "speakers": "field.replay_speakers",
}
CHAPTER_FIELDS = {"chapters": "field.chapters"}
PROVIDERS = ["youtube", "vimeo", "dailymotion", "peertube", "url"]
# The catalogue lists one publication state per query; the host sees them all.
PUBLICATIONS = ["draft", "scheduled", "published", "unpublished"]
ACTIONS = {"ready", "publish", "unpublish", "schedule"}


async def replays_view(request: Request, user: User, stop: dict[str, Any], *, form: Form | None = None,
                       chapter_forms: dict[str, Form] | None = None, status: int = 200) -> Response:
    client = backends(request).replays
    replays = [replay for status in PUBLICATIONS
               for replay in (await client.replays(token=user.token, stop_id=str(stop["id"]), status=status))["items"]]
    forms = {str(r["id"]): Form(CHAPTER_FIELDS, {"chapters": format_chapters(r.get("chapters") or [])})
             for r in replays}
    forms.update(chapter_forms or {})
    return render(request, "host_replays.html", status=status, stop=stop, replays=replays,
                  form=form or Form(REPLAY_FIELDS, {"provider": PROVIDERS[0]}), chapter_forms=forms,
                  providers=PROVIDERS, sessions=stop.get("sessions") or [])


@router.get("/stops/{stop_id}/replays", response_class=HTMLResponse)
async def stop_replays(request: Request, stop_id: str) -> Response:
    user = require_user(request, "host")
    return await replays_view(request, user, await owned_stop(request, user, stop_id))


@router.post("/stops/{stop_id}/replays", response_class=HTMLResponse)
async def create_replay(request: Request, stop_id: str) -> Response:
    user = require_user(request, "host")
    stop = await owned_stop(request, user, stop_id)
    form = Form(REPLAY_FIELDS, await read_form(request))
    body = {
        "stop_id": stop_id, "session_id": form.value("session_id") or None, "title": form.value("title"),
        "description": form.value("description"), "provider": form.value("provider"), "url": form.value("url"),
        "duration_s": converted(form, "duration_s", parse_clock, request.state.lang),
        "speakers": parse_replay_speakers(str(form.value("speakers"))),
    }
    await submit(request, form, lambda: backends(request).replays.create(user.token, body))
    if form.invalid:
        return await replays_view(request, user, stop, form=form, status=422)
    flash(request, "replays.created")
    return redirect(f"/host/stops/{stop_id}/replays")


@router.post("/stops/{stop_id}/replays/{replay_id}/chapters", response_class=HTMLResponse)
async def save_chapters(request: Request, stop_id: str, replay_id: str) -> Response:
    user = require_user(request, "host")
    stop = await owned_stop(request, user, stop_id)
    form = Form(CHAPTER_FIELDS, await read_form(request))
    chapters = converted(form, "chapters", parse_chapters, request.state.lang)
    await submit(request, form, lambda: backends(request).replays.set_chapters(user.token, replay_id, chapters))
    if form.invalid:
        return await replays_view(request, user, stop, chapter_forms={replay_id: form}, status=422)
    flash(request, "replays.chapters_saved")
    return redirect(f"/host/stops/{stop_id}/replays#replay-{replay_id}")


@router.post("/stops/{stop_id}/replays/{replay_id}/{action}")
async def replay_action(request: Request, stop_id: str, replay_id: str, action: str) -> Response:
    user = require_user(request, "host")
    await owned_stop(request, user, stop_id)
    if action not in ACTIONS:
        raise ServiceError(404, "not_found", "no such action")
    values = await read_form(request)
    body = None
    try:
        if action == "schedule":
            day, _, clock_time = str(values.get("publish_at", "")).partition("T")
            body = {"publish_at": paris_datetime(day, clock_time)}
        await backends(request).replays.transition(user.token, replay_id, action, body)
    except BadValue:
        flash(request, "replays.refused", detail=str(values.get("publish_at", "")))
    except ServiceError as error:
        if error.status in (401, 403, 404):
            raise
        flash(request, "replays.refused", detail=error.detail)
    else:
        flash(request, f"replays.done_{action}")
    return redirect(f"/host/stops/{stop_id}/replays#replay-{replay_id}")
