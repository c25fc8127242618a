"""Public pages: the season by region (list + map), a stop and its sign-up form, replays, follow a region."""

from __future__ import annotations

import secrets
from collections import defaultdict
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from portal import geo
from portal.clients import ServiceError, ServiceUnavailable
from portal.security import csrf_protect
from portal.values import token_from_url
from portal.web import (PUBLIC_STATUSES, Form, as_list, backends, flash, portal, read_form, redirect, render,
                        submit)

router = APIRouter(dependencies=[Depends(csrf_protect)])

SIGNUP_FIELDS = {
    "email": "field.email", "first_name": "field.first_name", "last_name": "field.last_name",
    "organisation": "field.organisation", "profile": "field.profile", "consents": "field.consents",
}
PROFILES = ["elected_official", "public_sector_staff", "entrepreneur", "institutional_partner", "other"]
CONSENTS = ["contact", "photo", "recording"]
SESSION_KINDS = ["opening", "plenary", "round_table", "debate", "workshop", "visit"]
FOLLOW_FIELDS = {"email": "field.email", "regions": "field.regions", "topics": "field.topics"}
TOPICS = ["stops", "replays"]
REPLAYS_PAGE_SIZE = 20


def by_region(stops: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for stop in sorted(stops, key=lambda s: (str(s.get("date") or ""), str(s.get("city") or ""))):
        groups[str(stop.get("region") or "")].append(stop)
    return sorted(groups.items(), key=lambda item: geo.region_name(item[0]))


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, season: str = "") -> Response:
    seasons = await portal(request).seasons()
    season = season or await portal(request).current_season()
    stops = [s for s in await backends(request).venues.stops(season=season) if s.get("status") in PUBLIC_STATUSES]
    return render(request, "home.html", season=season, seasons=seasons, regions_with_stops=by_region(stops),
                  markers=geo.markers(stops), outline=geo.OUTLINE_PATHS, map_width=geo.WIDTH,
                  map_height=geo.HEIGHT)


@router.get("/stops/{stop_id}.ics")
async def stop_calendar(request: Request, stop_id: str) -> Response:
    content = await backends(request).venues.stop_ics(stop_id)
    return Response(content, media_type="text/calendar; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="intercotour-{stop_id}.ics"'})


@router.get("/stops/{stop_id}", response_class=HTMLResponse)
async def stop_page(request: Request, stop_id: str) -> Response:
    stop = await public_stop(request, stop_id)
    return await stop_view(request, stop, Form(SIGNUP_FIELDS))


@router.post("/stops/{stop_id}/register", response_class=HTMLResponse)
async def register(request: Request, stop_id: str) -> Response:
    stop = await public_stop(request, stop_id)
    form = Form(SIGNUP_FIELDS, await read_form(request))
    consents = as_list(form.value("consents"))
    body = {
        **{name: form.value(name) for name in ("email", "first_name", "last_name", "organisation", "profile")},
        "consents": {kind: kind in consents for kind in CONSENTS},
        "locale": request.state.lang,
    }
    key = str(form.values.pop("idempotency_key", ""))[:100]
    created = await submit(request, form, lambda: backends(request).registration.sign_up(stop_id, body, key))
    if created is None:
        return await stop_view(request, stop, form, status=422)
    waitlisted = created.get("status") == "waitlisted"
    flash(request, "signup.waitlisted" if waitlisted else "signup.confirmed",
          position=created.get("waitlist_position") or "")
    token = token_from_url(created.get("manage_url"))
    return redirect(f"/r/{created['id']}?token={quote(token)}" if token else f"/stops/{stop_id}")


async def public_stop(request: Request, stop_id: str) -> dict[str, Any]:
    stop = await backends(request).venues.stop(stop_id)
    if stop.get("status") not in PUBLIC_STATUSES:
        raise ServiceError(404, "not_found", "no such stop")
    return stop


async def stop_view(request: Request, stop: dict[str, Any], form: Form, status: int = 200) -> Response:
    """The stop page; availability is optional, so a registration outage only blanks that box."""
    availability, registration_down = None, False
    try:
        availability = await backends(request).registration.availability(str(stop["id"]))
    except ServiceUnavailable:
        registration_down = True
    except ServiceError:
        availability = None
    sessions = sorted(stop.get("sessions") or [], key=lambda s: str(s.get("starts_at") or ""))
    return render(request, "stop.html", status=status, stop=stop, sessions=sessions, availability=availability,
                  registration_down=registration_down, form=form, profiles=PROFILES, consents=CONSENTS,
                  idempotency_key=secrets.token_urlsafe(16))


@router.get("/replays", response_class=HTMLResponse)
async def replay_catalogue(request: Request, season: str = "", region: str = "", session_kind: str = "",
                           page: int = 1) -> Response:
    page = max(page, 1)
    seasons = await portal(request).seasons()
    season = season or await portal(request).current_season()
    result = await backends(request).replays.replays(season=season, region=region, session_kind=session_kind,
                                                     status="published", page=page, page_size=REPLAYS_PAGE_SIZE)
    filters = {"season": season, "region": region, "session_kind": session_kind}
    query = "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v)
    return render(request, "replays.html", replays=result["items"], total=result["total"], page=page,
                  has_next=page * REPLAYS_PAGE_SIZE < result["total"], filters=filters, query=query,
                  seasons=seasons, session_kinds=SESSION_KINDS)


@router.get("/follow", response_class=HTMLResponse)
async def follow_page(request: Request, region: str = "") -> Response:
    form = Form(FOLLOW_FIELDS, {"regions": [region] if region else [], "topics": list(TOPICS)})
    return render(request, "follow.html", form=form, topics=TOPICS)


@router.post("/follow", response_class=HTMLResponse)
async def follow(request: Request) -> Response:
    form = Form(FOLLOW_FIELDS, await read_form(request))
    form.values["regions"], form.values["topics"] = as_list(form.value("regions")), as_list(form.value("topics"))
    body = {"email": form.value("email"), "regions": form.value("regions"), "topics": form.value("topics"),
            "locale": request.state.lang}
    await submit(request, form, lambda: backends(request).notifications.follow(body))
    if form.invalid:
        return render(request, "follow.html", status=422, form=form, topics=TOPICS)
    return redirect("/follow/sent")


@router.get("/follow/sent", response_class=HTMLResponse)
async def follow_sent(request: Request) -> Response:
    return render(request, "message.html", title_key="follow.sent_title", body_key="follow.sent_body")
