"""Portal settings (env prefix PORTAL_). Defaults point at the local stack."""

from __future__ import annotations

import secrets

from pydantic import Field, SecretStr, model_validator

from shared.config import BaseServiceSettings, service_settings


class Settings(BaseServiceSettings):
    model_config = service_settings("PORTAL_")

    service_name: str = "portal"
    http_port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"

    venues_url: str = "http://127.0.0.1:8001"
    registration_url: str = "http://127.0.0.1:8002"
    replays_url: str = "http://127.0.0.1:8003"
    notifications_url: str = "http://127.0.0.1:8004"
    mail_url: str = "http://127.0.0.1:8025"

    # Signs the session cookie. Local mode invents one per process (sessions end on restart).
    session_secret: SecretStr = SecretStr("")
    session_max_age_s: int = Field(default=12 * 3600, gt=0)
    # Empty: the latest season that has stops.
    current_season: str = ""
    backend_timeout_s: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> "Settings":
        # Replaces the base check: the portal mints no signed links, it needs a session secret.
        if not self.session_secret.get_secret_value():
            if self.mode == "production":
                raise ValueError("PORTAL_SESSION_SECRET must be configured outside local mode")
            self.session_secret = SecretStr(secrets.token_urlsafe(32))
        if len(self.session_secret.get_secret_value()) < 16:
            raise ValueError("PORTAL_SESSION_SECRET must be at least 16 characters")
        return self

    @property
    def is_local(self) -> bool:
        return self.mode == "local"
