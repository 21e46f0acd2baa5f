"""Webhooks from the real daemon to local HTTP receivers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon import Daemon, eventually, start
from tests.unit.test_webhooks import verify

pytestmark = pytest.mark.integration


class Receiver:
    """A local HTTP endpoint that records requests and answers ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.got: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.got.append((headers, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    good, bad = Receiver(204), Receiver(500)
    try:
        yield good, bad
    finally:
        good.close()
        bad.close()


def test_signed_deliveries_retries_and_dead_letters(
    tmp_path: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    """A receiver gets file.stored signed with its secret; a failing one gets
    the same delivery retried up to max_attempts, then it is dead-lettered.
    (The receivers are on loopback, so private targets are allowed.)"""
    good, bad = receivers
    daemon: Daemon = start(
        tmp_path / "uploadd", "--amqp-max-attempts=3", "--webhooks-allow-private=true"
    )
    try:
        hooks = {}
        for name, receiver in (("good", good), ("bad", bad)):
            _, _, body = daemon.request(
                "POST",
                "/webhooks",
                json.dumps({"url": receiver.url, "events": ["file.stored"]}).encode(),
                **{"Content-Type": "application/json"},
            )
            hooks[name] = json.loads(body)
        status, _, _ = daemon.request("PUT", "/files/report.pdf", b"%PDF-1.4")
        assert status == 201
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not good.got or len(bad.got) < 3):
            time.sleep(0.1)
        (headers, body), *_ = good.got
        seen: set[str] = set()
        assert verify(hooks["good"]["secret"], headers, body, time.time(), seen)
        assert not verify(hooks["good"]["secret"], headers, body, time.time(), seen)
        assert json.loads(body)["data"]["filename"] == "report.pdf"
        assert len(good.got) == 1
        assert len(bad.got) == 3
        assert len({h["webhook-id"] for h, _ in bad.got}) == 1
        time.sleep(1)
        log = daemon.json("GET", f"/webhooks/{hooks['bad']['id']}/deliveries")[
            "results"
        ]
        assert log[0]["attempts"] == 3 and log[0]["error"] == "HTTP 500"
        assert "dead-lettered" in daemon.log()
    finally:
        daemon.stop()


def test_private_targets_are_refused_when_made_and_when_delivered(
    tmp_path: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    """Without allow_private a loopback receiver is a 422 when the webhook is
    made; one made while it was allowed is refused at delivery once it is
    not: the receiver hears nothing and the delivery log says why."""
    good, _ = receivers
    data = tmp_path / "uploadd"
    allowed = start(data, "--webhooks-allow-private=true")
    try:
        hook = allowed.json(
            "POST", "/webhooks",
            body=json.dumps({"url": good.url, "events": ["file.stored"]}).encode(),
            **{"Content-Type": "application/json"},
        )  # fmt: skip
    finally:
        allowed.stop()
    daemon = start(data, "--amqp-max-attempts=1")
    try:
        status, headers, body = daemon.request(
            "POST", "/webhooks",
            json.dumps({"url": good.url.replace("127.0.0.1", "localhost")}).encode(),
            **{"Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 422, body
        assert headers["Content-Type"] == "application/problem+json"
        status, _, _ = daemon.request("PUT", "/files/report.pdf", b"%PDF-1.4")
        assert status == 201
        log = eventually(
            lambda: daemon.json("GET", f"/webhooks/{hook['id']}/deliveries")["results"],
            20,
            "a delivery attempt logged",
        )
        assert "RefusedTarget" in log[0]["error"]
        assert "127.0.0.1, a loopback address" in log[0]["error"]
        assert not log[0]["delivered"]
        assert good.got == []
    finally:
        daemon.stop()
