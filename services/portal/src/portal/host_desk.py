"""At the stop: live availability, the attendee list (and its CSV), and the check-in desk."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from portal.clients import ServiceError
from portal.host import owned_stop
from portal.security import csrf_protect
from portal.web import Form, backends, read_form, render, require_user

router = APIRouter(prefix="/host", dependencies=[Depends(csrf_protect)])

CHECKIN_FIELDS = {"code": "field.code"}


@router.get("/stops/{stop_id}/attendees", response_class=HTMLResponse)
async def attendees(request: Request, stop_id: str) -> Response:
    user = require_user(request, "host")
    stop = await owned_stop(request, user, stop_id)
    registration = backends(request).registration
    people = await registration.attendees(user.token, stop_id)
    availability = await registration.availability(stop_id)
    return render(request, "attendees.html", stop=stop, people=people, availability=availability)


@router.get("/stops/{stop_id}/attendees.csv")
async def attendees_csv(request: Request, stop_id: str) -> Response:
    user = require_user(request, "host")
    await owned_stop(request, user, stop_id)
    content = await backends(request).registration.attendees_csv(user.token, stop_id)
    return Response(content, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="attendees-{stop_id}.csv"', "Cache-Control": "no-store"})


def _checkin_page(request: Request, stop: dict, form: Form, result: dict | None = None, status: int = 200) -> Response:
    # A fresh nonce per page: resubmitting the same form is recognised by the service as the same scan.
    return render(request, "checkin.html", status=status, stop=stop, form=form, result=result,
                  nonce=secrets.token_urlsafe(12))


@router.get("/stops/{stop_id}/checkin", response_class=HTMLResponse)
async def checkin_page(request: Request, stop_id: str) -> Response:
    user = require_user(request, "host")
    return _checkin_page(request, await owned_stop(request, user, stop_id), Form(CHECKIN_FIELDS))


@router.post("/stops/{stop_id}/checkin", response_class=HTMLResponse)
async def check_in(request: Request, stop_id: str) -> Response:
    user = require_user(request, "host")
    stop = await owned_stop(request, user, stop_id)
    values = await read_form(request)
    code = str(values.get("code", "")).strip()
    body = {"code": code, "stop_id": stop_id, "nonce": str(values.get("nonce") or secrets.token_urlsafe(12))}
    try:
        result = await backends(request).registration.check_in(user.token, body)
    except ServiceError as error:
        if error.status in (401, 403):
            raise
        result = {"status": "error", "reason": (error.fields.get("code") or error.detail)}
    # The desk gets an empty field back, ready for the next person.
    return _checkin_page(request, stop, Form(CHECKIN_FIELDS), {**result, "code": code})
