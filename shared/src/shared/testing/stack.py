"""pytest plugin: the whole seeded local stack on free ports, once per test session (worker)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.localstack.stack import LocalStack, StackPorts


def start_stack(seed: bool = True) -> LocalStack:
    return LocalStack(Path(tempfile.mkdtemp(prefix="intercotour-stack-")), StackPorts.free()).start(seed=seed)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    stack = start_stack()
    try:
        yield stack
    finally:
        stack.stop()
