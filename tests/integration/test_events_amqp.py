"""Events through a real RabbitMQ: delivered live, and nothing lost while the
broker is down."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.broker import SERVER, Broker, free_port
from tests.integration.daemon import Daemon, start

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not SERVER.exists():
        pytest.fail("rabbitmq-server is not installed (make setup installs it)")
    running = Broker(tmp_path / "rabbitmq", free_port(), free_port())
    running.start()
    try:
        yield running
    finally:
        running.stop()
        running.stop_epmd()


def stored_events(daemon: Daemon, until: float, wanted: int) -> list[dict[str, object]]:
    """file.stored events from the owner's /events stream, until ``wanted``."""
    found: list[dict[str, object]] = []
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=1) as sock:
        head = (
            f"GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {daemon.token}"
        )
        sock.sendall(head.encode() + b"\r\n\r\n")
        buffer = b""
        while time.monotonic() < until and len(found) < wanted:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            buffer += chunk
            while b"\n\n" in buffer:
                message, buffer = buffer.split(b"\n\n", 1)
                lines = message.decode().split("\n")
                if "event: file.stored" in lines:
                    data = next(x for x in lines if x.startswith("data: "))
                    found.append(json.loads(data[6:]))
    return found


def test_events_survive_a_broker_outage(broker: Broker, tmp_path: Path) -> None:
    """With RabbitMQ as the bus, uploads made while the broker is stopped
    still succeed; once it is back every file.stored event is delivered."""
    daemon = start(tmp_path / "uploadd", f"--amqp-url={broker.url}")
    try:
        first: list[dict[str, object]] = []
        watcher = threading.Thread(
            target=lambda: first.extend(stored_events(daemon, time.monotonic() + 20, 1))
        )
        watcher.start()
        time.sleep(1)
        status, _, _ = daemon.request("PUT", "/files/first.txt", b"1")
        assert status == 201
        watcher.join()
        assert [e["filename"] for e in first] == ["first.txt"]

        broker.stop()
        later: list[dict[str, object]] = []
        watcher = threading.Thread(
            target=lambda: later.extend(
                stored_events(daemon, time.monotonic() + 90, 50)
            )
        )
        watcher.start()
        for n in range(50):
            status, _, _ = daemon.request("PUT", f"/files/f{n}.txt", str(n).encode())
            assert status == 201
        broker.start()
        watcher.join()
        names = sorted(str(e["filename"]) for e in later)
        assert names == sorted(f"f{n}.txt" for n in range(50))
    finally:
        daemon.stop()
