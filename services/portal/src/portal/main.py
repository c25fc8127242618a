"""Composition root: settings → backend clients → routers, error pages and security middleware."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from portal import account, host, host_desk, host_replays, i18n, mail, public, selfservice, staff
from portal.clients import Backends, ServiceError, ServiceUnavailable
from portal.config import Settings
from portal.security import CsrfError, PortalMiddleware
from portal.web import LoginRequired, Portal, flash, login_url, redirect, render
from shared.http import create_http_app
from shared.serve import serve

STATIC_DIR = Path(__file__).parent / "static"
# The error page's title for each backend refusal status.
ERROR_TITLES = {403: "error.forbidden", 404: "error.not_found", 409: "error.conflict", 410: "error.gone"}


def error_page(request: Request, status: int, title_key: str, detail: str = "",
               headers: dict[str, str] | None = None) -> Response:
    response = render(request, "error.html", status=status, title_key=title_key, detail=detail)
    response.headers.update(headers or {})
    return response


def install_error_pages(app: FastAPI) -> None:
    """Every failure becomes a page in the visitor's language; never a stack trace."""

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(request: Request, exc: ServiceUnavailable) -> Response:
        service = i18n.service_name(exc.service, request.state.lang)
        return error_page(request, 503, "error.unavailable_title",
                          i18n.translate("error.service_down", request.state.lang, service=service),
                          headers={"Retry-After": "10"})

    @app.exception_handler(ServiceError)
    async def _refused(request: Request, exc: ServiceError) -> Response:
        if exc.status == 401 and request.url.path.startswith(("/host", "/staff")):
            request.state.session.reset()
            flash(request, "login.expired")
            return redirect(login_url(request))
        return error_page(request, exc.status, ERROR_TITLES.get(exc.status, "error.refused"), exc.detail)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _: LoginRequired) -> Response:
        return redirect(login_url(request))

    @app.exception_handler(CsrfError)
    async def _csrf(request: Request, _: CsrfError) -> Response:
        return error_page(request, 403, "error.csrf_title", i18n.translate("error.csrf", request.state.lang))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, _: RequestValidationError) -> Response:
        return error_page(request, 400, "error.bad_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return error_page(request, exc.status_code, ERROR_TITLES.get(exc.status_code, "error.refused"))


def create_app(settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """``transport`` replaces the network for every backend call (tests use httpx.MockTransport)."""
    settings = settings or Settings()
    clients = Backends.from_settings(settings, transport)
    app = create_http_app(
        title="portal", runtime=None, on_shutdown=clients.aclose,
        description="IntercoTOUR web front: public pages, self-service links, host and staff desks.",
        routers=[public.router, selfservice.router, account.router, host.router, host_desk.router,
                 host_replays.router, staff.router, mail.router],
    )
    app.state.portal = Portal(settings, clients)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_error_pages(app)
    app.add_middleware(PortalMiddleware, settings=settings,
                       error_page=lambda request: error_page(request, 500, "error.internal_title",
                                                             i18n.translate("error.internal", request.state.lang)))
    return app


def run() -> None:
    settings = Settings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    run()
