"""Host pages: the territory's stops, proposing a stop, editing it and its sessions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from portal import i18n
from portal.clients import ServiceError, ServiceUnavailable
from portal.public import SESSION_KINDS
from portal.security import csrf_protect
from portal.values import BadValue, format_speakers, local_clock, paris_datetime, parse_number, parse_speakers
from portal.web import Form, User, backends, flash, portal, read_form, redirect, render, require_user, submit

router = APIRouter(prefix="/host", dependencies=[Depends(csrf_protect)])

STOP_FIELDS = {
    "season": "field.season", "region": "field.region", "territory_id": "field.territory_id",
    "city": "field.city", "venue_name": "field.venue_name", "venue_address": "field.venue_address",
    "venue_lat": "field.venue_lat", "venue_lon": "field.venue_lon",
    "venue_accessibility": "field.venue_accessibility", "date": "field.date", "starts_at": "field.starts_at",
    "ends_at": "field.ends_at", "theme": "field.theme", "capacity": "field.capacity",
}
SESSION_FIELDS = {
    "kind": "field.kind", "title": "field.title", "starts_at": "field.starts_at", "ends_at": "field.ends_at",
    "room": "field.room", "speakers": "field.speakers",
}


def converted(form: Form, name: str, convert: Callable[[str], Any], lang: str) -> Any:
    """The field converted, or None with an error next to it."""
    try:
        return convert(str(form.value(name)))
    except BadValue as bad:
        form.error(name, i18n.translate(str(bad), lang))
        return None


async def owned_stop(request: Request, user: User, stop_id: str) -> dict[str, Any]:
    """The stop, if this user may manage it (staff: any; host: its territory's)."""
    stop = await backends(request).venues.stop(stop_id, token=user.token)
    if not user.is_staff and str(stop.get("territory_id")) != str(user.territory_id):
        raise ServiceError(403, "forbidden", "this stop belongs to another territory")
    return stop


def optional_number(text: str) -> float | None:
    return parse_number(text, float) if text.strip() else None


def stop_body(form: Form, lang: str, *, day: str | None = None) -> dict[str, Any]:
    """A proposal (``day`` None: date, season, region and territory from the form) or an edit of a stop on ``day``.

    The date of an existing stop only changes by postponing it, so an edit leaves it out.
    """
    new = day is None
    day = str(form.value("date")) if new else day
    venue = {
        "name": form.value("venue_name"), "address": form.value("venue_address"),
        "lat": converted(form, "venue_lat", optional_number, lang),
        "lon": converted(form, "venue_lon", optional_number, lang),
        "accessibility": form.value("venue_accessibility"),
    }
    body: dict[str, Any] = {
        "city": form.value("city"),
        "venue": {k: v for k, v in venue.items() if v is not None},
        "starts_at": converted(form, "starts_at", lambda v: paris_datetime(day, v), lang),
        "ends_at": converted(form, "ends_at", lambda v: paris_datetime(day, v), lang),
        "theme": form.value("theme"),
        "capacity": converted(form, "capacity", lambda v: parse_number(v, int), lang),
    }
    if new:
        body.update(season=form.value("season"), region=form.value("region"), territory_id=form.value("territory_id"),
                    date=day)
    return body


def stop_values(stop: dict[str, Any]) -> dict[str, Any]:
    venue = stop.get("venue") or {}
    return {
        "city": stop.get("city", ""), "venue_name": venue.get("name", ""), "venue_address": venue.get("address", ""),
        "venue_lat": venue.get("lat", ""), "venue_lon": venue.get("lon", ""),
        "venue_accessibility": venue.get("accessibility", ""), "date": stop.get("date", ""),
        "starts_at": local_clock(stop.get("starts_at")), "ends_at": local_clock(stop.get("ends_at")),
        "theme": stop.get("theme", ""), "capacity": stop.get("capacity", ""),
    }


def session_values(session: dict[str, Any]) -> dict[str, Any]:
    return {"kind": session.get("kind", ""), "title": session.get("title", ""), "room": session.get("room", ""),
            "starts_at": local_clock(session.get("starts_at")), "ends_at": local_clock(session.get("ends_at")),
            "speakers": format_speakers(session.get("speakers") or [])}


def session_body(form: Form, day: str, lang: str) -> dict[str, Any]:
    return {"kind": form.value("kind"), "title": form.value("title"), "room": form.value("room"),
            "starts_at": converted(form, "starts_at", lambda v: paris_datetime(day, v), lang),
            "ends_at": converted(form, "ends_at", lambda v: paris_datetime(day, v), lang),
            "speakers": parse_speakers(str(form.value("speakers")))}


@router.get("", response_class=HTMLResponse)
async def dashboard(request: Request) -> Response:
    user = require_user(request, "host")
    stops = await backends(request).venues.stops(token=user.token)
    if not user.is_staff:
        stops = [s for s in stops if str(s.get("territory_id")) == str(user.territory_id)]
    stops.sort(key=lambda s: str(s.get("date") or ""), reverse=True)
    return render(request, "host_home.html", stops=stops)


@router.get("/stops/new", response_class=HTMLResponse)
async def new_stop_page(request: Request) -> Response:
    user = require_user(request, "host")
    values = {"season": await portal(request).current_season(), "territory_id": user.territory_id or ""}
    return render(request, "stop_form.html", form=Form(STOP_FIELDS, values))


@router.post("/stops/new", response_class=HTMLResponse)
async def propose_stop(request: Request) -> Response:
    user = require_user(request, "host")
    form = Form(STOP_FIELDS, await read_form(request))
    if not user.is_staff:  # a host proposes for its own territory, whatever the form says
        form.values["territory_id"] = user.territory_id or ""
    body = stop_body(form, request.state.lang)
    created = await submit(request, form, lambda: backends(request).venues.create_stop(user.token, body))
    if created is None:
        return render(request, "stop_form.html", status=422, form=form)
    flash(request, "host.proposed")
    return redirect(f"/host/stops/{created['id']}")


async def manage_view(request: Request, user: User, stop: dict[str, Any], *, stop_form: Form | None = None,
                      session_form: Form | None = None, session_target: str = "", status: int = 200) -> Response:
    availability = None
    try:
        availability = await backends(request).registration.availability(str(stop["id"]))
    except (ServiceError, ServiceUnavailable):
        availability = None
    sessions = sorted(stop.get("sessions") or [], key=lambda s: str(s.get("starts_at") or ""))
    session_forms = {str(s["id"]): Form(SESSION_FIELDS, session_values(s)) for s in sessions}
    session_forms["new"] = Form(SESSION_FIELDS, {"kind": "plenary"})
    if session_form is not None:
        session_forms[session_target] = session_form
    return render(request, "stop_manage.html", status=status, stop=stop, sessions=sessions,
                  availability=availability, stop_form=stop_form or Form(STOP_FIELDS, stop_values(stop)),
                  session_forms=session_forms, session_target=session_target, session_kinds=SESSION_KINDS)


@router.get("/stops/{stop_id}", response_class=HTMLResponse)
async def manage_stop(request: Request, stop_id: str) -> Response:
    user = require_user(request, "host")
    return await manage_view(request, user, await owned_stop(request, user, stop_id))


@router.post("/stops/{stop_id}", response_class=HTMLResponse)
async def edit_stop(request: Request, stop_id: str) -> Response:
    user = require_user(request, "host")
    stop = await owned_stop(request, user, stop_id)
    form = Form(STOP_FIELDS, await read_form(request))
    body = stop_body(form, request.state.lang, day=str(stop.get("date", "")))
    await submit(request, form, lambda: backends(request).venues.update_stop(user.token, stop_id, body))
    if form.invalid:
        return await manage_view(request, user, stop, stop_form=form, status=422)
    flash(request, "host.saved")
    return redirect(f"/host/stops/{stop_id}")


@router.post("/stops/{stop_id}/sessions", response_class=HTMLResponse)
async def add_session(request: Request, stop_id: str) -> Response:
    return await _save_session(request, stop_id, "new")


@router.post("/stops/{stop_id}/sessions/{session_id}", response_class=HTMLResponse)
async def update_session(request: Request, stop_id: str, session_id: str) -> Response:
    return await _save_session(request, stop_id, session_id)


async def _save_session(request: Request, stop_id: str, target: str) -> Response:
    user = require_user(request, "host")
    stop = await owned_stop(request, user, stop_id)
    form = Form(SESSION_FIELDS, await read_form(request))
    body = session_body(form, str(stop.get("date", "")), request.state.lang)
    venues = backends(request).venues
    if target == "new":
        await submit(request, form, lambda: venues.add_session(user.token, stop_id, body))
    else:
        await submit(request, form, lambda: venues.update_session(user.token, stop_id, target, body))
    if form.invalid:
        return await manage_view(request, user, stop, session_form=form, session_target=target, status=422)
    flash(request, "host.session_saved")
    return redirect(f"/host/stops/{stop_id}#sessions")


@router.post("/stops/{stop_id}/sessions/{session_id}/delete")
async def delete_session(request: Request, stop_id: str, session_id: str) -> Response:
    user = require_user(request, "host")
    await owned_stop(request, user, stop_id)
    await backends(request).venues.delete_session(user.token, stop_id, session_id)
    flash(request, "host.session_deleted")
    return redirect(f"/host/stops/{stop_id}#sessions")
