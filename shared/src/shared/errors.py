"""Errors the HTTP layer maps to statuses; domain modules raise these (no HTTP imports there)."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, fields: dict[str, Any] | None = None, code: str | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.fields = fields or {}
        self.extra = extra
        if code:
            self.code = code


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class Gone(AppError):
    status, code = 410, "gone"


class Unprocessable(AppError):
    status, code = 422, "unprocessable"


class TooManyRequests(AppError):
    status, code = 429, "too_many_requests"


class Unavailable(AppError):
    status, code = 503, "unavailable"
