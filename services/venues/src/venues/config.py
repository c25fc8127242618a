"""Venues settings (env prefix ``VENUES_``); defaults run the local stack with no configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from shared.config import BaseServiceSettings, service_settings

LOCAL_ADMIN_EMAIL = "admin@intercotour.local"
LOCAL_ADMIN_PASSWORD = "intercotour-admin"
LOCAL_HOST_PASSWORD = "intercotour-host"


class Settings(BaseServiceSettings):
    model_config = service_settings("VENUES_")

    service_name: str = "venues"
    http_port: int = 8001
    public_base_url: str = "http://127.0.0.1:8001"

    # Local mode creates the Ed25519 pair here once; jwt_public_key_file must be its public half.
    keys_dir: Path = Path(".local/keys")
    # Outside local mode the private key is provisioned (a mounted secret); default: <keys_dir>/jwt_private.pem.
    jwt_private_key_file: Path | None = None
    token_ttl_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    # Login attempts per 5 minutes, counted across instances (429 with Retry-After beyond).
    login_attempts_per_account: int = Field(default=20, ge=1)
    login_attempts_per_client: int = Field(default=100, ge=1)
    rate_limits_enabled: bool = True
    # After this many consecutive failed logins an account is locked for base * 2**n seconds (n = failures beyond).
    login_lockout_after: int = Field(default=5, ge=1)
    login_lockout_base_seconds: float = Field(default=2.0, gt=0)

    # The staff account ensured at startup. Local mode defaults to the documented demo account.
    admin_email: str | None = None
    admin_password: SecretStr | None = None
    # Password of the hosts the seed creates (local default: intercotour-host).
    seed_host_password: SecretStr | None = None

    @model_validator(mode="after")
    def _accounts_and_keys(self) -> "Settings":
        if self.jwt_private_key_file is None:
            self.jwt_private_key_file = self.keys_dir / "jwt_private.pem"
        if self.mode == "local":
            self.admin_email = self.admin_email or LOCAL_ADMIN_EMAIL
            self.admin_password = self.admin_password or SecretStr(LOCAL_ADMIN_PASSWORD)
            self.seed_host_password = self.seed_host_password or SecretStr(LOCAL_HOST_PASSWORD)
            return self
        if not self.admin_email or self.admin_password is None:
            raise ValueError("VENUES_ADMIN_EMAIL and VENUES_ADMIN_PASSWORD must be configured outside local mode")
        if self.admin_password.get_secret_value() in (LOCAL_ADMIN_PASSWORD, ""):
            raise ValueError("VENUES_ADMIN_PASSWORD must not be the local default outside local mode")
        if len(self.admin_password.get_secret_value()) < 12:
            raise ValueError("VENUES_ADMIN_PASSWORD must have at least 12 characters")
        return self
