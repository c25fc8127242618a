"""docker-compose.yml (which cannot be started on these machines) stays in step with the code:
every service, its Dockerfile, its settings, its port and the topic list."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = {"venues": 8001, "registration": 8002, "replays": 8003, "notifications": 8004, "portal": 8000}
BACKENDS = ("venues", "registration", "replays", "notifications")


def settings_fields(service: str) -> set[str]:
    return set(importlib.import_module(f"{service}.config").Settings.model_fields)


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_is_built_from_its_dockerfile(service):
    spec = COMPOSE["services"][service]
    dockerfile = ROOT / spec["build"]["dockerfile"]
    assert spec["build"]["context"] == "."
    text = dockerfile.read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
    assert ":" in base and not base.endswith(":latest"), f"{service}: base image must be pinned, got {base}"
    assert re.search(r"^USER\s+(?!root|0\b)\S+", text, re.M), f"{service}: must run as non-root"
    assert "HEALTHCHECK" in text
    assert "healthcheck" in spec


@pytest.mark.parametrize("service", SERVICES)
def test_environment_matches_the_settings_and_the_ports(service):
    spec = COMPOSE["services"][service]
    prefix = f"{service.upper()}_"
    env = spec["environment"]
    fields = settings_fields(service)
    unknown = [key for key in env if not key.startswith(prefix) or key[len(prefix):].lower() not in fields]
    assert unknown == [], f"{service}: variables no setting reads: {unknown}"
    port = SERVICES[service]
    assert env[f"{prefix}HTTP_PORT"] == str(port)
    assert env[f"{prefix}HTTP_HOST"] == "0.0.0.0"
    assert spec["ports"] == [f"{port}:{port}"]
    assert f":{port}/health" in " ".join(spec["healthcheck"]["test"])
    assert env[f"{prefix}MODE"] == "production"


@pytest.mark.parametrize("service", BACKENDS)
def test_backends_get_their_infrastructure_and_secrets(service):
    env = COMPOSE["services"][service]["environment"]
    prefix = f"{service.upper()}_"
    for name in ("MONGO_URL", "KAFKA_BOOTSTRAP", "LINK_SECRET", "JWT_PUBLIC_KEY_FILE"):
        assert f"{prefix}{name}" in env, f"{service} lacks {prefix}{name}"
    assert "replicaSet=rs0" in env[f"{prefix}MONGO_URL"], "transactions need the replica set"
    assert env[f"{prefix}KAFKA_IDEMPOTENT"] == "true", "real Kafka runs the idempotent producer"


def test_portal_reaches_every_backend():
    env = COMPOSE["services"]["portal"]["environment"]
    for service, port in SERVICES.items():
        if service != "portal":
            assert env[f"PORTAL_{service.upper()}_URL"] == f"http://{service}:{port}"


def test_topics_are_created_from_the_shared_topic_list():
    command = COMPOSE["services"]["kafka-init"]["command"]
    assert "shared.messaging.create_topics" in command
    for service in BACKENDS:
        assert COMPOSE["services"][service]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_real_engines_are_used():
    assert COMPOSE["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert "--replSet" in COMPOSE["services"]["mongo"]["command"]
    assert COMPOSE["services"]["mailpit"]["image"].startswith("axllent/mailpit:")
