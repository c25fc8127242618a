"""Circuit staff: proposals to review, every stop by state, the delivery log and dead letters."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from portal.clients import ServiceError, ServiceUnavailable
from portal.security import csrf_protect
from portal.web import backends, flash, read_form, redirect, render, require_user

router = APIRouter(prefix="/staff", dependencies=[Depends(csrf_protect)])

STATE_ORDER = ["proposed", "accepted", "registration_open", "registration_closed", "postponed", "held", "archived",
               "rejected", "cancelled"]
# The actions offered for each state (the service has the final word on what is allowed).
ACTIONS_BY_STATE = {
    "proposed": ["accept", "reject"],
    "accepted": ["open-registration"],
    "postponed": ["open-registration"],
    "registration_open": ["close-registration"],
    "registration_closed": ["open-registration", "mark-held"],
}
STOP_ACTIONS = {action for actions in ACTIONS_BY_STATE.values() for action in actions}


@router.get("", response_class=HTMLResponse)
async def overview(request: Request) -> Response:
    user = require_user(request, "staff")
    stops = await backends(request).venues.stops(token=user.token)
    by_state: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for stop in sorted(stops, key=lambda s: (str(s.get("date") or ""), str(s.get("city") or ""))):
        by_state[str(stop.get("status"))].append(stop)
    states = [s for s in STATE_ORDER if s in by_state] + sorted(set(by_state) - set(STATE_ORDER))
    return render(request, "staff_home.html", proposals=by_state.get("proposed", []), states=states,
                  by_state=by_state, actions=ACTIONS_BY_STATE)


@router.post("/stops/{stop_id}/{action}")
async def stop_action(request: Request, stop_id: str, action: str) -> Response:
    user = require_user(request, "staff")
    if action not in STOP_ACTIONS:
        raise ServiceError(404, "not_found", "no such action")
    values = await read_form(request)
    body = {"reason": values["reason"]} if values.get("reason") else None
    try:
        await backends(request).venues.transition(user.token, stop_id, action, body)
    except ServiceError as error:
        if error.status in (401, 403):
            raise
        flash(request, "staff.refused", detail=error.detail)
    else:
        flash(request, f"staff.done_{action}")
    return redirect("/staff")


@router.get("/deliveries", response_class=HTMLResponse)
async def deliveries(request: Request, recipient: str = "", kind: str = "", status: str = "") -> Response:
    user = require_user(request, "staff")
    filters = {"recipient": recipient, "kind": kind, "status": status}
    rows = await backends(request).notifications.deliveries(user.token, **filters)
    return render(request, "deliveries.html", deliveries=rows, filters=filters)


@router.get("/dead-letters", response_class=HTMLResponse)
async def dead_letters(request: Request) -> Response:
    """Dead letters of every service; one service down only blanks its own section."""
    user = require_user(request, "staff")
    sections = []
    for client in backends(request).services():
        try:
            sections.append((client.service, await client.dead_letters(user.token), None))
        except (ServiceError, ServiceUnavailable) as error:
            sections.append((client.service, [], type(error).__name__))
    return render(request, "dead_letters.html", sections=sections)


@router.post("/dead-letters/{service}/{dead_letter_id}/replay")
async def replay_dead_letter(request: Request, service: str, dead_letter_id: str) -> Response:
    user = require_user(request, "staff")
    client = next((c for c in backends(request).services() if c.service == service), None)
    if client is None:
        raise ServiceError(404, "not_found", "no such service")
    try:
        await client.replay_dead_letter(user.token, dead_letter_id)
    except ServiceError as error:
        if error.status in (401, 403):
            raise
        flash(request, "staff.refused", detail=error.detail)
    else:
        flash(request, "staff.replayed")
    return redirect("/staff/dead-letters")
