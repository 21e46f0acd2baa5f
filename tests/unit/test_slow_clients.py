"""Slow clients on both daemons' HTTP channels, with a Clock: the request head
has a deadline from its first byte, a body or a response that stops moving is
dropped after the idle timeout, and a body that moves is left alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from twisted.internet.task import Clock
from twisted.web.server import Site

from noded.config import load_config as load_node_config
from noded.drain import Drain
from noded.files import NodeFiles
from noded.http import download_site
from noded.signing import signed_query, url_key
from tests.support import Connection, connection, harness

FILE_ID = "ab" * 16
SECRET = b"c" * 40
IDLE, HEADER = 60.0, 20.0


@attrs.define
class Server:
    """One daemon's Site with its clock, and requests it answers."""

    site: Site
    clock: Clock
    #: a request answered at once (its head only, without the final CRLF)
    quick: bytes
    #: a request whose response stays open (more of it is still to come)
    long: Callable[[], bytes]

    def connect(self) -> Connection:
        return connection(self.site)


def uploadd(tmp_path: Path) -> Server:
    app = harness(tmp_path)
    token = app.user("alice")
    return Server(
        app.parts.site,
        app.clock,
        b"GET /health HTTP/1.1\r\nHost: uploadd\r\nX-Padding: " + b"p" * 40,
        lambda: (
            f"GET /events HTTP/1.1\r\nHost: uploadd\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode(),
    )


def noded(tmp_path: Path) -> Server:
    files = NodeFiles(tmp_path)
    path = files.path(FILE_ID)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 100_000)
    clock = Clock()
    clock.advance(1_000_000)
    key = url_key(SECRET)
    query = signed_query(key, FILE_ID, 2_000_000, "x.bin", "application/x")
    config = load_node_config(environ={}, options={("node", "data_dir"): "unused"})
    target = f"/files/{FILE_ID}?{query}"
    return Server(
        download_site(files, key, clock, config.http, Drain(clock)),
        clock,
        f"HEAD {target} HTTP/1.1\r\nHost: node\r\nX-Padding: ".encode() + b"p" * 40,
        lambda: f"GET {target} HTTP/1.1\r\nHost: node\r\n\r\n".encode(),
    )


@pytest.fixture(params=[uploadd, noded], ids=["uploadd", "noded"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Server:
    make: Callable[[Path], Server] = request.param
    return make(tmp_path)


def dribble(server: Server, wire: Connection, data: bytes, every: float) -> float:
    """Send ``data`` a byte at a time, ``every`` seconds apart, until the server
    closes the connection; how long that took (or all of it)."""
    waited = 0.0
    for byte in data:
        if wire.transport.disconnecting:
            break
        wire.send(bytes([byte]))
        server.clock.advance(every)
        waited += every
    return waited


def test_a_request_head_must_arrive_within_header_timeout_of_its_first_byte(
    server: Server,
) -> None:
    """A head sent a byte every 5 s is cut at header_timeout (20 s) with a 408,
    though every gap is far below the 60 s idle timeout."""
    wire = server.connect()
    server.clock.advance(30)  # before the first byte, the idle timer runs
    assert not wire.transport.disconnecting
    took = dribble(server, wire, server.quick, every=5)
    assert took == HEADER
    status, headers, body = wire.response()
    assert status == 408
    assert headers["content-type"] == "application/problem+json"
    assert b"request head" in body


def test_the_header_deadline_starts_again_with_each_request_on_a_kept_alive_connection(
    server: Server,
) -> None:
    """A second request on a kept-alive connection gets its own 20 s from its
    own first byte: not from the connection's start, not extended by reads."""
    wire = server.connect()
    wire.send(server.quick + b"\r\n\r\n")
    assert wire.response()[0] == 200
    wire.transport.clear()
    server.clock.advance(IDLE - 1)
    assert not wire.transport.disconnecting
    for byte in server.quick[:19]:
        wire.send(bytes([byte]))
        server.clock.advance(1)
    assert not wire.transport.disconnecting  # 19 s into the second head
    server.clock.advance(1)
    assert wire.transport.disconnecting
    assert wire.response()[0] == 408


def test_an_idle_connection_is_closed_after_idle_timeout_without_an_answer(
    server: Server,
) -> None:
    """A connection on which no request starts is closed after idle_timeout,
    silently (no request to answer)."""
    wire = server.connect()
    server.clock.advance(IDLE - 1)
    assert not wire.transport.disconnecting
    server.clock.advance(1)
    assert wire.transport.disconnecting
    assert wire.output() == b""


def test_a_body_that_brings_no_data_is_dropped_after_idle_timeout(
    server: Server,
) -> None:
    """Chunk framing dribbled without a byte of data (a chunk-size line of
    zeros, one every 5 s) is no progress: 408 and closed after idle_timeout."""
    wire = server.connect()
    head = server.quick.replace(b"HEAD ", b"GET ")
    wire.send(head + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    took = dribble(server, wire, b"0" * 100, every=5)
    assert took == IDLE
    status, headers, body = wire.response()
    assert status == 408
    assert headers["content-type"] == "application/problem+json"
    assert b"request body" in body


def test_a_body_that_keeps_bringing_data_is_not_timed_out(server: Server) -> None:
    """A slow body whose data keeps arriving (a byte every 50 s, for 500 s)
    stays connected: only a body with no progress for idle_timeout is dropped."""
    wire = server.connect()
    head = server.quick.replace(b"HEAD ", b"GET ")
    wire.send(head + b"\r\nContent-Length: 11\r\n\r\n")
    for _ in range(10):
        server.clock.advance(50)
        wire.send(b"x")
    assert not wire.transport.disconnecting
    assert wire.output() == b""


def test_a_response_the_client_stops_reading_is_dropped_after_idle_timeout(
    server: Server,
) -> None:
    """While a response is written, a transport that stays paused (the client
    reads nothing) for idle_timeout is aborted; each resume restarts it."""
    wire = server.connect()
    wire.send(server.long())
    assert not wire.transport.disconnecting
    channel: Any = wire.transport.producer  # as a real transport drives it
    channel.pauseProducing()  # the transport's buffer is full
    server.clock.advance(IDLE - 1)
    channel.resumeProducing()  # the client read some
    channel.pauseProducing()
    server.clock.advance(IDLE - 1)
    assert not wire.transport.disconnected
    server.clock.advance(1)
    assert wire.transport.disconnected
