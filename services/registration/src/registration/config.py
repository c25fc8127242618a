"""Registration settings (env prefix ``REGISTRATION_``)."""

from __future__ import annotations

from pydantic import Field

from shared.config import BaseServiceSettings, service_settings


class Settings(BaseServiceSettings):
    model_config = service_settings("REGISTRATION_")

    service_name: str = "registration"
    http_port: int = 8002
    public_base_url: str = "http://127.0.0.1:8002"

    # After a stop is held, confirmed people not checked in become no-shows this much later.
    no_show_grace_minutes: int = Field(default=120, ge=0)
    # Self-service links stay valid until the stop ends plus this many days.
    manage_link_days_after_end: int = Field(default=30, ge=1)

    # Sign-ups per minute per client address (429 with Retry-After beyond); off with RATE_LIMITS_ENABLED=false.
    signups_per_minute: int = Field(default=30, ge=1)
    rate_limits_enabled: bool = True
    # Attendees' personal data is pseudonymised this many days after their stop is held.
    retention_days: float = Field(default=365, ge=0)
