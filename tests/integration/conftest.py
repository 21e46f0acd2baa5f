from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.broker import SERVER, Broker, free_port
from tests.integration.daemon import Daemon, start
from tests.integration.s3daemon import Key, S3Daemon
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


# -- the S3 API: every test module names its own ``s3`` daemon -----------------


@pytest.fixture(scope="module")
def alice(s3: S3Daemon) -> Key:
    """An access key of the module's S3 daemon (scope write)."""
    return s3.key()


@pytest.fixture
def client(s3: S3Daemon, alice: Key) -> Any:
    """A boto3 client signing with ``alice``'s key."""
    return s3.client(alice)


@pytest.fixture
def bucket(client: Any, s3: S3Daemon) -> Iterator[str]:
    """A new bucket of ``alice``'s, for one test."""
    name = f"bucket-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield name
    s3.settle()
