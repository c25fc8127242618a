"""Startup safety: staff credentials outside local mode, and the token key pair."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.auth import ensure_keypair
from venues.accounts import load_signing_key
from venues.config import LOCAL_ADMIN_EMAIL, LOCAL_ADMIN_PASSWORD, Settings

PRODUCTION = {"mode": "production", "link_secret": "a-real-production-link-secret"}


def test_local_mode_has_the_documented_staff_account():
    settings = Settings()
    assert settings.admin_email == LOCAL_ADMIN_EMAIL
    assert settings.admin_password.get_secret_value() == LOCAL_ADMIN_PASSWORD
    assert settings.jwt_private_key_file.parent == settings.keys_dir


def test_production_needs_configured_staff_credentials(monkeypatch):
    with pytest.raises(ValidationError, match="VENUES_ADMIN_EMAIL and VENUES_ADMIN_PASSWORD"):
        Settings(**PRODUCTION)
    with pytest.raises(ValidationError, match="must not be the local default"):
        Settings(**PRODUCTION, admin_email="ops@example.org", admin_password=LOCAL_ADMIN_PASSWORD)
    monkeypatch.setenv("VENUES_ADMIN_EMAIL", "ops@example.org")
    monkeypatch.setenv("VENUES_ADMIN_PASSWORD", "a-strong-staff-password")
    settings = Settings(**PRODUCTION)
    assert settings.admin_email == "ops@example.org" and settings.seed_host_password is None


def test_local_mode_creates_the_key_pair_once(tmp_path):
    settings = Settings(keys_dir=tmp_path / "keys", jwt_public_key_file=tmp_path / "keys" / "jwt_public.pem")
    first = load_signing_key(settings)
    assert load_signing_key(settings) == first
    assert (tmp_path / "keys" / "jwt_private.pem").stat().st_mode & 0o077 == 0


def test_a_public_key_that_is_not_the_signing_keys_half_stops_startup(tmp_path):
    _, other_public = ensure_keypair(tmp_path / "other")
    settings = Settings(keys_dir=tmp_path / "keys", jwt_public_key_file=other_public)
    with pytest.raises(RuntimeError, match="not the public half"):
        load_signing_key(settings)


def test_production_needs_a_provisioned_private_key(tmp_path):
    settings = Settings(**PRODUCTION, admin_email="ops@example.org", admin_password="a-strong-staff-password",
                        keys_dir=tmp_path)
    with pytest.raises(RuntimeError, match="is missing"):
        load_signing_key(settings)
