"""Host and staff sign-in through venues; the JWT stays in the signed session cookie."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from portal import i18n
from portal.clients import ServiceError, ServiceUnavailable
from portal.security import csrf_protect
from portal.web import Form, backends, current_user, read_form, redirect, render

router = APIRouter(dependencies=[Depends(csrf_protect)])

LOGIN_FIELDS = {"email": "field.email", "password": "field.password"}


def _safe_next(target: str, role: str) -> str:
    """Only paths on this site (no //host or scheme), else the role's home."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/staff" if role == "staff" else "/host"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "") -> Response:
    return render(request, "login.html", form=Form(LOGIN_FIELDS), next=next)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, next: str = "") -> Response:
    values = await read_form(request)
    form = Form(LOGIN_FIELDS, {"email": values.get("email", "")})
    try:
        granted = await backends(request).venues.login(values.get("email", ""), values.get("password", ""))
    except ServiceError as error:
        if error.status == 422:
            form.apply(error)
        else:  # Never say whether the email or the password was wrong.
            form.messages.append(i18n.translate("login.refused", request.state.lang))
        return render(request, "login.html", status=error.status, form=form, next=next)
    except ServiceUnavailable as error:
        form.unavailable(error, request.state.lang)
        return render(request, "login.html", status=503, form=form, next=next)
    role = str(granted.get("role", ""))
    # A new identity gets a new session (and CSRF token): nothing from before the login carries over.
    request.state.session.reset(token=granted["access_token"], role=role, territory_id=granted.get("territory_id"),
                                email=form.value("email"), csrf=secrets.token_urlsafe(32))
    return redirect(_safe_next(next, role))


@router.post("/logout")
async def logout(request: Request) -> Response:
    if current_user(request):
        request.state.session.reset()
    return redirect("/")
