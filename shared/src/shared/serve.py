"""Process entry point shared by every service: logging, then uvicorn with a graceful stop."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from shared.config import BaseServiceSettings
from shared.logging import configure_logging


def serve(app: FastAPI, settings: BaseServiceSettings) -> None:
    configure_logging(settings.service_name, settings.log_format, settings.log_level)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        proxy_headers=True,
    )
