"""Pages reached from email links, authorised by the link's signed token (no account)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from portal.clients import ServiceError, ServiceUnavailable
from portal.public import TOPICS
from portal.security import csrf_protect
from portal.web import Form, as_list, backends, flash, read_form, redirect, render, submit

router = APIRouter(dependencies=[Depends(csrf_protect)])

REGISTRATION_ACTIONS = {"cancel": "manage.cancelled", "accept-offer": "manage.offer_accepted",
                        "decline-offer": "manage.offer_declined", "transfer": "manage.transferred"}
PREFERENCE_FIELDS = {"regions": "field.regions", "topics": "field.topics"}


def manage_url(registration_id: str, token: str) -> str:
    return f"/r/{registration_id}?token={quote(token)}"


@router.get("/r/{registration_id}", response_class=HTMLResponse)
async def manage(request: Request, registration_id: str, token: str = "") -> Response:
    registration = await backends(request).registration.registration(registration_id, token)
    stop, transfer_to = await _stop_and_alternatives(request, str(registration.get("stop_id") or ""))
    return render(request, "manage.html", registration=registration, stop=stop, transfer_to=transfer_to,
                  token=token, action_base=f"/r/{registration_id}")


async def _stop_and_alternatives(request: Request, stop_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The stop (for its name and date) and the open stops one may transfer to; both optional."""
    venues = backends(request).venues
    try:
        stop = await venues.stop(stop_id)
        others = await venues.stops(season=stop.get("season"), status="registration_open")
    except (ServiceError, ServiceUnavailable):
        return None, []
    return stop, [s for s in others if str(s.get("id")) != stop_id and s.get("status") == "registration_open"]


@router.get("/r/{registration_id}/qr.svg")
async def qr_code(request: Request, registration_id: str, token: str = "") -> Response:
    svg = await backends(request).registration.qr_svg(registration_id, token)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.get("/r/{registration_id}/{choice}", response_class=HTMLResponse)
async def offer(request: Request, registration_id: str, choice: str, token: str = "") -> Response:
    """The offer email's accept/decline links land here; the choice is made with a button (a POST),
    so a mail scanner following the link decides nothing. Their token only answers the offer."""
    if choice not in ("accept", "decline"):
        raise ServiceError(404, "not_found", "no such page")
    registration = await backends(request).registration.registration(registration_id, token)
    stop, _ = await _stop_and_alternatives(request, str(registration.get("stop_id") or ""))
    return render(request, "manage.html", registration=registration, stop=stop, transfer_to=[], token=token,
                  action_base=f"/r/{registration_id}", offer_link=choice)


@router.post("/r/{registration_id}/{action}")
async def registration_action(request: Request, registration_id: str, action: str, token: str = "") -> Response:
    if action not in REGISTRATION_ACTIONS:
        raise ServiceError(404, "not_found", "no such action")
    values = await read_form(request)
    body = {"to_stop_id": values.get("to_stop_id", "")} if action == "transfer" else None
    back = values.get("back") if values.get("back") in ("accept", "decline") else None
    try:
        await backends(request).registration.self_service(registration_id, token, action, body)
    except ServiceError as error:
        if error.status in (403, 404, 410):
            raise
        flash(request, "manage.refused", detail=error.detail)
    else:
        flash(request, REGISTRATION_ACTIONS[action])
    if back:
        return redirect(f"/r/{registration_id}/{back}?token={quote(token)}")
    return redirect(manage_url(registration_id, token))


@router.get("/follow/confirm", response_class=HTMLResponse)
async def confirm_follow(request: Request, token: str = "") -> Response:
    await backends(request).notifications.confirm(token)
    return render(request, "message.html", title_key="follow.confirmed_title", body_key="follow.confirmed_body")


@router.get("/preferences", response_class=HTMLResponse)
async def preferences(request: Request, token: str = "") -> Response:
    current = await backends(request).notifications.preferences(token)
    form = Form(PREFERENCE_FIELDS, {"regions": as_list(current.get("regions")), "topics": as_list(current.get("topics"))})
    return render(request, "preferences.html", form=form, token=token, topics=TOPICS, email=current.get("email", ""))


@router.post("/preferences", response_class=HTMLResponse)
async def save_preferences(request: Request, token: str = "") -> Response:
    values = await read_form(request)
    form = Form(PREFERENCE_FIELDS, {"regions": as_list(values.get("regions")), "topics": as_list(values.get("topics"))})
    body = {"regions": form.value("regions"), "topics": form.value("topics")}
    await submit(request, form, lambda: backends(request).notifications.save_preferences(token, body))
    if form.invalid:
        return render(request, "preferences.html", status=422, form=form, token=token, topics=TOPICS, email="")
    flash(request, "preferences.saved")
    return redirect(f"/preferences?token={quote(token)}")


@router.get("/unsubscribe", response_class=HTMLResponse)
async def unsubscribe_page(request: Request, token: str = "") -> Response:
    return render(request, "unsubscribe.html", token=token)


@router.post("/unsubscribe", response_class=HTMLResponse)
async def unsubscribe(request: Request, token: str = "") -> Response:
    await backends(request).notifications.unsubscribe(token)
    return render(request, "message.html", title_key="unsubscribe.done_title", body_key="unsubscribe.done_body")
