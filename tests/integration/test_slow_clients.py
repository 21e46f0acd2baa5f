"""Slow clients on real sockets against a real `twistd uploadd` and `twistd
noded` (header_timeout 2 s, idle_timeout 4 s): a head dribbled a byte at a
time, chunk framing without data, and a download nobody reads are each cut
off, however steadily the client keeps the connection busy."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import attrs
import pytest

from noded.files import NodeFiles
from noded.signing import signed_query, url_key
from tests.integration.daemon import start
from tests.integration.test_noded import SECRET, start_node
from tests.integration.wire import read_answer

pytestmark = pytest.mark.integration
TIMEOUTS = ("--http-header-timeout=2s", "--http-idle-timeout=4s")
HEADER, IDLE = 2.0, 4.0
GAP = 0.25  # between the bytes a dribbling client sends
BIG = 64 * 1024 * 1024  # far more than the socket buffers hold
FILE_ID = "cd" * 16


@attrs.frozen
class Served:
    port: int
    #: the head of a request whose answer is the BIG file (no final CRLF)
    download: bytes
    #: the head of a request that takes a body (no final CRLF)
    upload: bytes
    in_flight: Callable[[], int] | None = None


@pytest.fixture(scope="module")
def uploadd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    daemon = start(tmp_path_factory.mktemp("uploadd"), *TIMEOUTS)
    try:
        status, _, body = daemon.request("PUT", "/files/big.bin", bytes(BIG))
        assert status == 201, body
        auth = f"Authorization: Bearer {daemon.token}"
        file_id = json.loads(body)["id"]
        yield Served(
            daemon.port,
            f"GET /files/{file_id}/content HTTP/1.1\r\nHost: t\r\n{auth}".encode(),
            f"PUT /files/slow.bin HTTP/1.1\r\nHost: t\r\n{auth}".encode(),
            lambda: int(daemon.json("GET", "/health")["uploads_in_flight"]),
        )
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def noded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    node = start_node(tmp_path_factory.mktemp("node"), "n1", options=TIMEOUTS)
    try:
        path = NodeFiles(node.data_dir).path(FILE_ID)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(BIG))
        query = signed_query(
            url_key(SECRET.encode()), FILE_ID, int(time.time()) + 3600, "b", "x/y"
        )
        head = f"GET /files/{FILE_ID}?{query} HTTP/1.1\r\nHost: t".encode()
        yield Served(node.ports["http"], head, head)
    finally:
        node.stop()


@pytest.fixture(params=["uploadd", "noded"])
def served(request: pytest.FixtureRequest) -> Served:
    found: Served = request.getfixturevalue(request.param)
    return found


def dribble(sock: socket.socket, data: bytes, within: float) -> float:
    """Send ``data`` a byte every GAP seconds until the server answers or
    closes; the seconds that took. AssertionError if it waits ``within`` s."""
    started = time.monotonic()
    for byte in data:
        sock.sendall(bytes([byte]))
        sock.settimeout(GAP)
        try:
            sock.recv(1, socket.MSG_PEEK)  # an answer, or the end
        except TimeoutError:
            pass
        else:
            sock.settimeout(2.0)
            return time.monotonic() - started
        if time.monotonic() - started > within:
            break
    raise AssertionError(f"still connected after {within} s of dribbling")


def test_a_head_sent_a_byte_at_a_time_is_cut_at_header_timeout(
    served: Served,
) -> None:
    """A byte every 0.25 s keeps the idle timer (4 s) content, but the whole
    head is due 2 s after its first byte: 408, then the connection closes."""
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        took = dribble(sock, served.download + b"\r\nX-Pad: " + b"p" * 200, 10)
        answer = read_answer(sock, time.monotonic())
        assert sock.recv(1) == b""
    assert answer.status == 408
    assert answer.problem
    assert "request head" in answer.json()["detail"]
    assert HEADER - 0.5 < took < HEADER + 1.5


def test_a_body_of_framing_without_data_is_cut_at_idle_timeout(
    served: Served,
) -> None:
    """After a whole head, chunk-size digits at 0.25 s intervals bring no body
    byte: 408 at idle_timeout, the connection closed, no upload left open."""
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(served.upload + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        took = dribble(sock, b"0" * 200, 15)
        answer = read_answer(sock, time.monotonic())
        assert sock.recv(1) == b""
    assert answer.status == 408
    assert answer.problem
    assert "request body" in answer.json()["detail"]
    assert IDLE - 0.5 < took < IDLE + 1.5
    if served.in_flight is not None:
        assert served.in_flight() == 0


def test_a_download_nobody_reads_is_dropped_after_idle_timeout(
    served: Served,
) -> None:
    """A client that asks for 64 MiB and reads none of it is disconnected once
    the server could write nothing for idle_timeout: reading afterwards ends
    long before the file does."""
    received = 0
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(served.download + b"\r\n\r\n")
        time.sleep(IDLE + 3)
        sock.settimeout(10)
        try:
            while chunk := sock.recv(1024 * 1024):
                received += len(chunk)
        except ConnectionResetError:
            pass
    assert 0 < received < BIG
