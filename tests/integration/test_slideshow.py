"""Seed 004's presenter control: WebSocket and SSE listeners follow the owner."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.daemon import add_user, eventually, start
from tests.integration.test_transcode_tools import _write_pdf

pytestmark = pytest.mark.integration


def websocket(port: int, path: str) -> socket.socket:
    """A raw WebSocket client connection (handshake done)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def text_frame(sock: socket.socket) -> str:
    """One unmasked text frame from the server."""
    head = sock.recv(2)
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(sock.recv(2), "big")
    data = b""
    while len(data) < length:
        data += sock.recv(length - len(data))
    return data.decode()


def close_frame(sock: socket.socket) -> tuple[int, str]:
    """The code and reason of the server's close frame, skipping any
    messages before it."""
    while True:
        head = sock.recv(2)
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        data = b""
        while len(data) < length:
            data += sock.recv(length - len(data))
        if opcode == 0x8:
            return int.from_bytes(data[:2], "big"), data[2:].decode()


def test_listeners_follow_the_presenter_through_a_share_link(tmp_path: Path) -> None:
    """A listener with only the deck's share link follows the owner's moves
    over a WebSocket; another signed-in user can neither follow nor present
    (404); revoking the link closes the listener's socket and its token
    stops working."""
    pdf = tmp_path / "deck.pdf"
    _write_pdf(pdf, 4)
    daemon = start(tmp_path / "uploadd")
    try:
        bob = add_user(daemon.data_dir, "bob", "read", "bob-password")
        _, _, body = daemon.request(
            "PUT", "/files/deck.pdf", pdf.read_bytes(),
            **{"Content-Type": "application/pdf"},
        )  # fmt: skip
        file_id = json.loads(body)["id"]
        eventually(
            lambda: daemon.json("GET", f"/files/{file_id}")["status"] == "READY", 60
        )
        share = daemon.json("POST", f"/files/{file_id}/shares")
        listen = urlsplit(share["listen_url"])
        listener = websocket(daemon.port, f"{listen.path}?{listen.query}")
        time.sleep(0.3)
        status, _, answer = daemon.request(
            "POST",
            f"/files/{file_id}/control",
            json.dumps({"current": 3}).encode(),
            **{"Content-Type": "application/json"},
        )
        assert status == 200 and json.loads(answer)["current"] == 3
        move = json.loads(text_frame(listener))
        assert move["current"] == 3 and move["updated"]

        as_bob = {"Authorization": f"Bearer {bob}"}
        for method, path in (
            ("GET", f"/files/{file_id}/control"),
            ("POST", f"/files/{file_id}/control"),
        ):
            status, _, _ = daemon.request(
                method, path, json.dumps({"current": 4}).encode(),
                **as_bob, **{"Content-Type": "application/json"},
            )  # fmt: skip
            assert status == 404, (method, path)
        with pytest.raises(AssertionError, match="404"):
            websocket(daemon.port, f"/files/{file_id}/listen?access_token={bob}")

        status, _, _ = daemon.request(
            "DELETE", f"/files/{file_id}/shares/{share['id']}"
        )
        assert status == 204
        assert close_frame(listener) == (4403, "the share link was revoked")
        listener.close()
        control = urlsplit(share["control_url"])
        status, _, _ = daemon.request(
            "GET", f"{control.path}?{control.query}", Authorization=""
        )
        assert status == 404
        state = daemon.json("GET", f"/files/{file_id}/control")
        assert state["current"] == 3 and len(state["slides"]) == 4
    finally:
        daemon.stop()
