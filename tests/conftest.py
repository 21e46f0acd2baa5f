"""pytest configuration. The reactor is never imported here (pytest-twisted
installs it); fixtures that need one take it from pytest_twisted."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import Harness, harness


@pytest.fixture
def app(tmp_path: Path) -> Harness:
    return harness(tmp_path)
