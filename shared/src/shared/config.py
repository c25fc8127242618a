"""Settings shared by every service; each service subclasses with its own env prefix.

Defaults point at the local stack so that `make run` needs no configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_LINK_SECRET = "local-only-link-secret-change-me"
MIN_SECRET_LENGTH = 16


class BaseServiceSettings(BaseSettings):
    """Common knobs. A service sets ``model_config = service_settings("VENUES_")``."""

    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "service"
    mode: Literal["local", "production"] = "local"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    portal_base_url: str = "http://127.0.0.1:8000"

    mongo_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    mongo_db: str = ""
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Real Kafka supports the idempotent producer; the local Tansu broker rejects InitProducerId.
    kafka_idempotent: bool = False
    kafka_partitions: int = 9

    log_format: Literal["json", "console"] = "console"
    log_level: str = "INFO"

    jwt_public_key_file: Path = Path(".local/keys/jwt_public.pem")
    jwt_audience: str = "intercotour"
    jwt_issuer: str = "intercotour-venues"
    # Signs the single-purpose links (self-service, preferences) this service mints.
    link_secret: SecretStr = SecretStr(DEFAULT_LINK_SECRET)

    relay_poll_seconds: float = Field(default=1.0, gt=0)
    # A change stream wakes the relay on other instances' commits; on SecantusDB it
    # costs 2-3x sign-up throughput (measured), so it is opt-in; the poll covers it.
    relay_watch: bool = False
    # After a wake, wait this long so one batch carries the commits of a burst.
    relay_linger_seconds: float = Field(default=0.005, ge=0)
    # Published events kept in memory and republished to a broker that lost its log: the
    # local memory-only broker after a restart. A durable Kafka keeps them itself.
    relay_retain_seconds: float = Field(default=0.0, ge=0)
    timer_poll_seconds: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=10.0, gt=0)
    consumer_retries: int = Field(default=3, ge=0)

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> "BaseServiceSettings":
        if not self.mongo_db:
            self.mongo_db = self.service_name
        secret = self.link_secret.get_secret_value()
        if self.mode == "production" and (secret == DEFAULT_LINK_SECRET or len(secret) < MIN_SECRET_LENGTH):
            raise ValueError(f"link_secret must be configured outside local mode ({MIN_SECRET_LENGTH}+ characters)")
        return self


def service_settings(prefix: str) -> SettingsConfigDict:
    """The settings config every service uses: ``<SVC>_`` env prefix, unknown keys ignored."""
    return SettingsConfigDict(env_prefix=prefix, extra="ignore")
