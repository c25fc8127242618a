"""pytest plugin: the whole seeded local stack on free ports, once per test session (worker)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.localstack.stack import LocalStack, StackPorts


# Windows shortened so tests see digests and batches close in seconds, not minutes.
TEST_ENV = {
    "notifications": {"DIGEST_WINDOW_SECONDS": "2", "FOLLOWS_PER_MINUTE": "100000"},
    "replays": {"BATCH_WINDOW_SECONDS": "2"},
    # Suites log in far more often than a person; the limits themselves have their own tests.
    "venues": {"LOGIN_ATTEMPTS_PER_ACCOUNT": "10000", "LOGIN_ATTEMPTS_PER_CLIENT": "10000",
               "LOGIN_LOCKOUT_AFTER": "10000"},
    "registration": {"SIGNUPS_PER_MINUTE": "100000"},
}


def start_stack(seed: bool = True) -> LocalStack:
    stack = LocalStack(Path(tempfile.mkdtemp(prefix="intercotour-stack-")), StackPorts.free(), extra_env=TEST_ENV)
    return stack.start(seed=seed)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    stack = start_stack()
    try:
        yield stack
    finally:
        stack.stop()
