"""Web Push from the real daemon: a PDF's slides are made by the in-process
worker, and the browsers its owner subscribed are told through a local push
service that checks VAPID and decrypts each message as the browser would."""

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
from tests.integration.test_renditions import until, upload
from tests.integration.test_transcode_tools import _write_pdf, need
from tests.webpush import Browser, check_vapid

pytestmark = pytest.mark.integration


class PushService:
    """A push service on loopback: a browser per path; a POST to it is
    checked (VAPID against ``public_key``, the headers RFC 8030 wants) and
    decrypted with that browser's keys. ``/gone/...`` answers 410, the rest
    201."""

    def __init__(self) -> None:
        self.public_key = ""
        self.browsers: dict[str, Browser] = {}
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    # Header names are case-insensitive (Twisted sends "Ttl").
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    shown = service.take(self.path, headers, body)
                    service.got.append((self.path, shown))
                    status = 410 if self.path.startswith("/gone/") else 201
                except Exception as error:
                    service.errors.append(f"{type(error).__name__}: {error}")
                    status = 400
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def endpoint(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def browser(self, path: str) -> Browser:
        self.browsers[path] = Browser()
        return self.browsers[path]

    def take(self, path: str, headers: dict[str, str], body: bytes) -> Any:
        check_vapid(
            headers["authorization"], self.endpoint(path), self.public_key, time.time()
        )
        assert headers["content-encoding"] == "aes128gcm"
        assert int(headers["ttl"]) > 0
        return json.loads(self.browsers[path].read(body))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService()
    try:
        yield service
    finally:
        service.close()


def subscribe(daemon: Daemon, service: PushService, path: str) -> int:
    status, _, _ = daemon.request(
        "POST",
        "/push/subscriptions",
        json.dumps(service.browser(path).subscription(service.endpoint(path))).encode(),
        **{"Content-Type": "application/json"},
    )
    return status


def test_ready_slides_are_pushed_to_the_owners_browsers(
    tmp_path: Path, push_service: PushService
) -> None:
    """A PDF's slides become READY; each browser its owner subscribed gets a
    notification signed with the key /push/key serves and readable only
    with its own keys, naming the file and opening its deck; a browser its
    push service says is gone (410) is forgotten. After a restart the key is
    the same, and without [push] allow_private a loopback push service is
    refused (to subscribe, and no message to one subscribed before)."""
    need("pdftoppm")
    pdf = tmp_path / "deck.pdf"
    _write_pdf(pdf, 3)
    data = tmp_path / "uploadd"
    daemon = start(data, "--push-allow-private=true")
    try:
        key = daemon.json("GET", "/push/key")["public_key"]
        push_service.public_key = key
        assert subscribe(daemon, push_service, "/wpush/laptop") == 201
        assert subscribe(daemon, push_service, "/gone/old-phone") == 201
        shown = upload(daemon, "deck.pdf", pdf.read_bytes(), "application/pdf")
        until(daemon, shown["id"], lambda d: d["status"] == "READY")
        eventually(
            lambda: len(push_service.got) + len(push_service.errors) >= 2,
            30,
            "two pushes",
        )
        assert push_service.errors == []
        got = dict(push_service.got)
        message = got["/wpush/laptop"]
        assert message["title"] == "deck.pdf is ready"
        assert message["body"] == "pdf-slides: 3 slides"
        assert message["url"] == f"/#/slides/{shown['id']}"
        assert (message["file_id"], message["profile"]) == (shown["id"], "pdf-slides")
        assert got["/gone/old-phone"]["file_id"] == shown["id"]
        left = eventually(
            lambda: (
                (found := daemon.json("GET", "/push/subscriptions")["results"])
                and len(found) == 1
                and found
            ),
            10,
            "the gone subscription forgotten",
        )
        assert left[0]["endpoint"] == push_service.endpoint("/wpush/laptop")
    finally:
        daemon.stop()
    daemon = start(data, "--amqp-max-attempts=1")
    try:
        assert daemon.json("GET", "/push/key")["public_key"] == key
        # http is for private push services only; https to loopback is a 422.
        assert subscribe(daemon, push_service, "/wpush/other") == 400
        pushed = len(push_service.got)
        again = upload(daemon, "again.pdf", pdf.read_bytes(), "application/pdf")
        until(daemon, again["id"], lambda d: d["status"] == "READY")
        eventually(lambda: "loopback address" in daemon.log(), 20, "the refusal logged")
        assert "[push] allow_private" in daemon.log()
        assert len(push_service.got) == pushed
    finally:
        daemon.stop()
