from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config import BaseServiceSettings, service_settings


class VenuesLike(BaseServiceSettings):
    model_config = service_settings("VENUES_")
    service_name: str = "venues"
    http_port: int = 8001


def test_defaults_point_at_the_local_stack_and_env_overrides(monkeypatch):
    settings = VenuesLike()
    assert settings.mongo_db == "venues" and settings.kafka_bootstrap == "127.0.0.1:9092"
    assert not settings.kafka_idempotent, "the local broker rejects the idempotent producer"
    monkeypatch.setenv("VENUES_HTTP_PORT", "9001")
    monkeypatch.setenv("VENUES_KAFKA_IDEMPOTENT", "true")
    overridden = VenuesLike()
    assert overridden.http_port == 9001 and overridden.kafka_idempotent


@pytest.mark.parametrize("secret", [None, "change-me"])
def test_production_refuses_default_or_weak_secrets(monkeypatch, secret):
    monkeypatch.setenv("VENUES_MODE", "production")
    if secret:
        monkeypatch.setenv("VENUES_LINK_SECRET", secret)
    with pytest.raises(ValidationError, match="link_secret"):
        VenuesLike()
    monkeypatch.setenv("VENUES_LINK_SECRET", "a-real-production-secret-value")
    assert VenuesLike().mode == "production"
