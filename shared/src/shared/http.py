"""FastAPI app factory: error envelope, request ids, body limit, /health, /ready, /asyncapi.

Every error leaves as ``{"error": code, "detail": text, "fields": {...}}``;
validation errors are 422 naming each field; an unreachable database is a 503
(never a 500), so a client knows to retry; so is every write while the broker is
unreachable.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import AppError
from shared.logging import bind_contextvars, clear_contextvars, get_logger
from shared.mongo import is_transient, is_unavailable

log = get_logger("http")

MAX_BODY_BYTES = 256 * 1024
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def error_response(status: int, code: str, detail: str, fields: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"error": code, "detail": detail, "fields": fields or {}, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def _field_name(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        headers = {"Retry-After": str(exc.extra.pop("retry_after"))} if "retry_after" in exc.extra else None
        return error_response(exc.status, exc.code, exc.detail, exc.fields, headers=headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields: dict[str, str] = {}
        for err in exc.errors():
            name = _field_name(err.get("loc", ()))
            message = "unknown field (not allowed)" if err.get("type") == "extra_forbidden" else err.get("msg", "invalid")
            fields.setdefault(name, message)
        summary = "; ".join(f"{k}: {v}" for k, v in fields.items())
        return error_response(422, "validation_error", f"invalid request: {summary}"[:1000], fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


def unexpected_error_response(exc: Exception) -> JSONResponse:
    """What escapes every handler: an outage is a 503 to retry, anything else a 500 without internals."""
    if is_unavailable(exc):
        log.warning("http.db_unavailable", error=repr(exc))
        return error_response(503, "unavailable", "the database is unavailable; retry shortly", headers={"Retry-After": "2"})
    if is_transient(exc):  # write conflicts still colliding after the unit of work's retries
        log.warning("http.write_conflict", error=repr(exc))
        return error_response(503, "unavailable", "too many concurrent changes; retry shortly", headers={"Retry-After": "1"})
    log.exception("http.unhandled", error=repr(exc))
    return error_response(500, "internal_error", "unexpected error; it has been logged")


def install_write_guard(app: FastAPI, runtime: Any) -> None:
    """While the broker is unreachable, refuse writes (issue #2): their events could not be
    published, so the client is told to retry rather than left believing the change went through.
    A write accepted just before the outage was noticed keeps its events in the outbox and they are
    published once the broker is back. Reads are still served."""
    watch = getattr(runtime, "broker_watch", None)
    if watch is None:
        return

    @app.middleware("http")
    async def refuse_writes_without_broker(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        # (a runtime that was never started has no watch running: nothing to go by)
        if request.method in UNSAFE_METHODS and runtime.started and not watch.available:
            log.warning("http.broker_unavailable", method=request.method, path=request.url.path)
            return error_response(503, "unavailable", "the message broker is unavailable; retry shortly",
                                  headers={"Retry-After": "2"})
        return await call_next(request)


def install_request_context(app: FastAPI, max_body_bytes: int) -> None:
    @app.middleware("http")
    async def request_context(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        clear_contextvars()
        bind_contextvars(request_id=request_id, correlation_id=request.headers.get("x-correlation-id", request_id),
                         service=app.title)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body_bytes:
            return error_response(413, "payload_too_large", f"request body over {max_body_bytes} bytes")
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:
            response = unexpected_error_response(exc)
        response.headers["X-Request-ID"] = request_id
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        log.info("http.request", method=request.method, path=request.url.path, status=response.status_code,
                 ms=round((time.perf_counter() - started) * 1000, 1))
        return response


def create_http_app(
    *,
    title: str,
    runtime: Any | None,
    routers: Iterable[APIRouter],
    description: str = "",
    max_body_bytes: int = MAX_BODY_BYTES,
    on_startup: Callable[[], Awaitable[None]] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """The app every service serves. ``runtime`` is a ServiceRuntime (or None for the portal)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            await runtime.start()
        if on_startup:
            await on_startup()
        try:
            yield
        finally:
            if on_shutdown:
                await on_shutdown()
            if runtime is not None:
                await runtime.stop()

    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan)
    install_error_handlers(app)
    install_write_guard(app, runtime)  # added first so that it runs inside the request context
    install_request_context(app, max_body_bytes)
    app.state.runtime = runtime

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    async def ready() -> JSONResponse:
        checks = await runtime.readiness() if runtime is not None else {}
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    if runtime is not None:
        install_asyncapi(app, runtime, title)
    document_error_envelope(app)

    for router in routers:
        app.include_router(router)
    return app


# What every error (422 included) looks like; FastAPI would document its own 422 shape instead.
ERROR_ENVELOPE_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "detail", "fields"],
    "properties": {
        "error": {"type": "string", "description": "machine-readable code, e.g. validation_error"},
        "detail": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": True, "description": "field -> what is wrong"},
    },
    "additionalProperties": True,
}


def document_error_envelope(app: FastAPI) -> None:
    """Make /openapi.json declare the error envelope the handlers above really send for 422."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = generate()
        if fresh:
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ERROR_ENVELOPE_SCHEMA
                schemas.pop("ValidationError", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_asyncapi(app: FastAPI, runtime: Any, title: str) -> None:
    from faststream.specification import AsyncAPI

    def spec() -> Any:
        return AsyncAPI(runtime.broker, title=title, version="1.0.0", schema_version="3.0.0").to_specification()

    @app.get("/asyncapi", tags=["ops"], response_class=HTMLResponse)
    async def asyncapi_html(request: Request) -> Any:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(spec().to_jsonable())
        from faststream.specification.asyncapi.site import get_asyncapi_html

        return HTMLResponse(get_asyncapi_html(spec()))

    @app.get("/asyncapi.json", tags=["ops"])
    async def asyncapi_json() -> Any:
        return JSONResponse(spec().to_jsonable())
