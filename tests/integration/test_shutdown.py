"""SIGTERM stops both daemons gracefully: requests in flight finish within the
grace, the rest are answered 503 (resumable bodies keep what reached disk),
and the process exits 0."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from noded.signing import signed_query, url_key
from tests.integration.daemon import start
from tests.integration.test_noded import SECRET, push, start_node
from tests.integration.wire import ask, read_answer, request_head

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
GRACE = 3.0


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_sigterm_lets_uploads_finish_and_answers_the_rest(tmp_path: Path) -> None:
    """After SIGTERM uploadd takes no new connections and ends event streams;
    an upload in flight that finishes within the grace is stored (201); a
    request on a kept-alive connection gets 503; a tus PATCH still running
    when the grace runs out gets 503 with Retry-After and Connection: close,
    and after a restart its offset is every byte that was sent; exit is 0."""
    data_dir = tmp_path / "uploadd"
    daemon = start(data_dir, f"--http-shutdown-grace={GRACE}s")
    auth = {"Authorization": f"Bearer {daemon.token}"}
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    created = ask(
        daemon.port, "POST", "/uploads/", {**tus, "Upload-Length": str(64 * MIB)}
    )
    assert created.status == 201, created
    upload = "/uploads/" + str(created.header("location")).rsplit("/", 1)[-1]
    whole = os.urandom(8 * MIB)
    stalled = os.urandom(5 * MIB)
    with (
        socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as finishing,
        socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as patching,
        socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as kept,
        socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as events,
    ):
        finishing.sendall(
            request_head(
                "PUT", "/files/late.bin", {**auth, "Content-Length": str(len(whole))}
            )
            + whole[: 4 * MIB]
        )
        patching.sendall(
            request_head(
                "PATCH",
                upload,
                {
                    **tus,
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                    "Content-Length": str(64 * MIB),
                },
            )
            + stalled
        )
        kept.sendall(request_head("GET", "/health", {}))
        assert read_answer(kept, time.monotonic()).status == 200
        events.sendall(request_head("GET", "/events", auth))
        assert b": connected" in events.recv(65536)
        time.sleep(0.5)  # the bodies so far reach the disk
        signalled = time.monotonic()
        daemon.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert refused(daemon.port)
        assert events.recv(65536) == b""  # the event stream ended at once
        kept.sendall(request_head("GET", "/health", {}))
        answer = read_answer(kept, time.monotonic())
        assert (answer.status, answer.problem) == (503, True), answer
        finishing.sendall(whole[4 * MIB :])
        stored = read_answer(finishing, time.monotonic())
        assert stored.status == 201, stored
        cut = read_answer(patching, time.monotonic())
        assert (cut.status, cut.problem) == (503, True), cut
        assert cut.header("retry-after") is not None
        assert cut.header("connection") == "close"
        assert GRACE - 0.5 < time.monotonic() - signalled < GRACE + 2
    assert daemon.process.wait(20) == 0

    daemon = start(data_dir)
    try:
        head = ask(daemon.port, "HEAD", upload, tus)
        assert head.header("upload-offset") == str(len(stalled))
        assert daemon.json("GET", "/files")["count"] == 1
    finally:
        daemon.stop()


def test_sigterm_lets_a_node_finish_its_downloads(tmp_path: Path) -> None:
    """After SIGTERM noded takes no new connections, a download in flight
    is served to its last byte, and the node exits 0."""
    # A grace long enough for the download on a busy machine: the stop ends
    # as soon as the download does, not when the grace runs out.
    node = start_node(tmp_path / "node", "n1", options=("--http-shutdown-grace=20s",))
    try:
        data = os.urandom(16 * MIB)
        source = tmp_path / "source.bin"
        source.write_bytes(data)
        file_id = "ab" * 16
        assert push(node, source, file_id) == 0
        query = signed_query(
            url_key(SECRET.encode()), file_id, int(time.time()) + 60, "a.bin", ""
        )
        port = node.ports["http"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.sendall(request_head("GET", f"/files/{file_id}?{query}", {}))
            received = sock.recv(64 * 1024)
            node.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            assert refused(port)
            while chunk := sock.recv(1 << 20):
                received += chunk
        assert received.split(b"\r\n\r\n", 1)[1] == data
        assert node.process.wait(30) == 0
    finally:
        node.stop()
