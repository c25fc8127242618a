"""Settings of the notifications service (env prefix ``NOTIFICATIONS_``)."""

from __future__ import annotations

from pydantic import Field

from shared.config import BaseServiceSettings, service_settings


class Settings(BaseServiceSettings):
    model_config = service_settings("NOTIFICATIONS_")

    service_name: str = "notifications"
    http_port: int = 8004
    public_base_url: str = "http://127.0.0.1:8004"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_timeout_seconds: float = Field(default=15.0, gt=0)
    mail_from: str = "IntercoTOUR <noreply@intercotour.local>"
    unsubscribe_mailto: str = "unsubscribe@intercotour.local"
    # Persistent SMTP connections the sender keeps open (one message at a time each).
    smtp_concurrency: int = Field(default=16, ge=1, le=256)

    sender_poll_seconds: float = Field(default=0.5, gt=0)
    # A delivery claimed by a sender that died is claimed again after this lease.
    delivery_lease_seconds: float = Field(default=120.0, gt=0)
    claim_batch: int = Field(default=500, ge=1, le=5000)
    email_max_attempts: int = Field(default=8, ge=1)
    email_retry_base_seconds: float = Field(default=30.0, ge=0)
    email_retry_max_seconds: float = Field(default=3600.0, ge=0)

    digest_window_seconds: float = Field(default=120.0, ge=0)
    fanout_chunk: int = Field(default=1000, ge=1, le=10_000)
    reminder_hours_before: float = Field(default=24.0, gt=0)

    follow_confirm_ttl_seconds: int = 7 * 24 * 3600
    # Unsubscribe and preference links must keep working long after the email was sent.
    preferences_ttl_seconds: int = 2 * 365 * 24 * 3600

    # Abuse limits per client address and minute (429 + Retry-After beyond); off with RATE_LIMITS_ENABLED=false.
    follows_per_minute: int = Field(default=30, ge=1)
    privacy_requests_per_minute: int = Field(default=10, ge=1)
    rate_limits_enabled: bool = True
    # Attendees' personal data (read model) is pseudonymised this many days after their stop is held.
    retention_days: float = Field(default=365, ge=0)

    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_schedule: list[float] = Field(default=[5, 300, 1800, 7200, 18000, 36000])
    # Endpoint disabled (and its owner told) after this many deliveries failed for good in a row.
    webhook_disable_after: int = Field(default=3, ge=1)

    @property
    def private_webhooks_allowed(self) -> bool:
        return self.mode == "local" and self.webhook_allow_private
