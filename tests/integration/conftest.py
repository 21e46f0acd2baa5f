from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.broker import SERVER, Broker, free_port
from tests.integration.daemon import Daemon, start
from tests.integration.test_web import chromium


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A running `twistd -n uploadd`, stopped by pid afterwards."""
    running = start(tmp_path / "uploadd")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private RabbitMQ on loopback, stopped by pid (with its epmd) afterwards."""
    if not SERVER.exists():
        pytest.fail("rabbitmq-server is not installed (make setup installs it)")
    running = Broker(tmp_path / "rabbitmq", free_port(), free_port())
    running.start()
    try:
        yield running
    finally:
        running.stop()
        running.stop_epmd()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a profile of its own, quit afterwards."""
    driver = chromium(tmp_path / "chromium")
    try:
        yield driver
    finally:
        driver.quit()
