"""pytest configuration. The reactor is never imported here (pytest-twisted
installs it); fixtures that need one take it from pytest_twisted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import Cluster, start_cluster
from tests.support import Harness, harness


@pytest.fixture
def app(tmp_path: Path) -> Harness:
    return harness(tmp_path)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One private PostgreSQL for the whole session, started the first time a
    test asks for it (a second or two) and stopped by pid at the end."""
    try:
        cluster = start_cluster()
    except Exception as error:
        pytest.fail(f"no private PostgreSQL: {error}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def postgres_url(request: pytest.FixtureRequest, postgres_cluster: Cluster) -> str:
    """A fresh database of the session's cluster for this test module."""
    name = re.sub(r"\W", "_", request.module.__name__).lower()
    return postgres_cluster.create_database(name)
