"""Seed 004's presenter control: WebSocket and SSE listeners follow the owner."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.integration.daemon import add_user, start

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


def test_listeners_follow_the_presenter(tmp_path: Path) -> None:
    """The owner's control reaches a WebSocket listener; another user may
    follow but not control."""
    daemon = start(tmp_path / "uploadd")
    try:
        bob = add_user(daemon.data_dir, "bob", "read", "bob-password")
        _, _, body = daemon.request("PUT", "/files/deck.pdf", b"%PDF-1.4 slides")
        file_id = json.loads(body)["id"]
        listener = websocket(daemon.port, f"/files/{file_id}/listen?access_token={bob}")
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
        listener.close()
        status, _, _ = daemon.request(
            "POST",
            f"/files/{file_id}/control",
            json.dumps({"current": 4}).encode(),
            Authorization=f"Bearer {bob}",
            **{"Content-Type": "application/json"},
        )
        assert status == 403
        state = daemon.json("GET", f"/files/{file_id}/control")
        assert state["current"] == 3
    finally:
        daemon.stop()
