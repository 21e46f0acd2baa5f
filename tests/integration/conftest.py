from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, start


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A running `twistd -n uploadd`, stopped by pid afterwards."""
    running = start(tmp_path / "uploadd")
    try:
        yield running
    finally:
        running.stop()
