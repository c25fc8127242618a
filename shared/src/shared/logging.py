"""structlog setup shared by every service.

JSON in containers, console locally. Request, correlation and event ids are
bound through contextvars. Email addresses and tokens are never written in
clear: a processor masks them in every value before rendering.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# JWTs (three base64url segments) and our signed links (two segments, long).
TOKEN_RE = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*|\b[\w-]{20,}\.[\w-]{20,}\b")
TOKEN_QUERY_RE = re.compile(r"(token=)[^&\s\"']+")
SECRET_KEYS = {"password", "token", "access_token", "secret", "authorization", "link_secret", "email"}

__all__ = ["bind_contextvars", "bound_contextvars", "clear_contextvars", "configure_logging", "get_logger", "mask_email", "redact"]


def mask_email(email: str) -> str:
    """A stable pseudonym: same address → same tag, so logs can still be correlated."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:10]
    return f"<email:{digest}>"


def redact(value: Any) -> Any:
    if isinstance(value, str):
        value = TOKEN_QUERY_RE.sub(r"\1<redacted>", value)
        value = TOKEN_RE.sub("<token>", value)
        return EMAIL_RE.sub(lambda m: mask_email(m.group(0)), value)
    if isinstance(value, Mapping):
        return {k: _redact_item(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def _redact_item(key: Any, value: Any) -> Any:
    if isinstance(key, str) and key.lower() in SECRET_KEYS and isinstance(value, str):
        return mask_email(value) if key.lower() == "email" else "<redacted>"
    return redact(value)


def _redact_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {key: _redact_item(key, value) for key, value in event_dict.items()}


def configure_logging(service: str, fmt: str = "console", level: str = "INFO") -> None:
    """Configure structlog and route stdlib logging (uvicorn, aiokafka, pymongo) through it."""
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymongo", "faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    bind_contextvars(service=service)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
