"""pytest plugin (enabled by the root conftest): infrastructure fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.testing.infra import LocalInfra, infra_session


@pytest.fixture(scope="session")
def infra() -> Iterator[LocalInfra]:
    """Tansu + SecantusDB on free ports, one pair per test process (xdist worker)."""
    yield from infra_session()
