"""Events through a real RabbitMQ: delivered live, and nothing lost while the
broker is down."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.broker import Broker
from tests.integration.daemon import Daemon, EventStream, start

pytestmark = pytest.mark.integration


def stored_events(daemon: Daemon, until: float, wanted: int) -> list[dict[str, Any]]:
    """file.stored events from the owner's /events stream, until ``wanted``."""
    stream = EventStream(daemon.port, daemon.token)
    found = []
    try:
        for topic, data, _ in stream.messages(until - time.monotonic()):
            if topic == "file.stored":
                found.append(data)
                if len(found) == wanted:
                    break
    finally:
        stream.close()
    return found


def test_events_survive_a_broker_outage(broker: Broker, tmp_path: Path) -> None:
    """With RabbitMQ as the bus, uploads made while the broker is stopped
    still succeed; once it is back every file.stored event is delivered."""
    daemon = start(tmp_path / "uploadd", f"--amqp-url={broker.url}")
    try:
        first: list[dict[str, Any]] = []
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
        later: list[dict[str, Any]] = []
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
