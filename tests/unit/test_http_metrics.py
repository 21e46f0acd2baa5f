"""Requests counted once each, by method, route template and status, on
both daemons (refusals written before any handler ran included), their
durations, noded's own families, and who may read /metrics. In memory:
raw channels and StubTreq on a Clock."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import pytest_twisted
from prometheus_client import generate_latest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.server import Site

from noded.config import load_config as load_node_config
from noded.drain import Drain
from noded.files import NodeFiles
from noded.http import download_site
from noded.metrics import MetricsPage
from noded.signing import signed_query, url_key
from noded.stats import NodeStats
from noded.threads import run_inline
from tests.metrics import labelled, value
from tests.support import Connection, Harness, auth, connection, harness

TOKEN = "m" * 40
FILE_ID = "ab" * 16
SECRET = b"c" * 40
REQUESTS = "uploadd_http_requests_total"


def connect_from(site: Site, peer: IPv4Address | IPv6Address) -> Connection:
    """A connection to ``site`` from the client address ``peer``."""
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8080))
    transport = StringTransport(peerAddress=peer)
    protocol.makeConnection(transport)
    return Connection(protocol, transport)


def close(wire: Connection) -> None:
    wire.protocol.connectionLost(Failure(ConnectionDone()))


def exposed(app: Harness) -> str:
    """The registry as a scrape shows it, without making a request."""
    return generate_latest(app.parts.metrics.registry).decode()


async def scrape(app: Harness) -> str:
    reply = await app.call("GET", "/metrics")
    assert reply.code == 200, reply.body
    return reply.body.decode()


async def answered(wire: Connection) -> tuple[int, dict[str, str], bytes]:
    """The first response on ``wire`` once its whole body is there (file
    bodies are written by the global reactor's cooperator)."""
    from twisted.internet import reactor

    for _ in range(1000):
        if b"\r\n\r\n" in wire.output():
            status, headers, body = wire.response()
            if len(body) >= int(headers.get("content-length", "0")):
                return status, headers, body
        await deferLater(reactor, 0.001)
    raise AssertionError("no whole response")


@attrs.define
class Node:
    """A node's download site in memory, holding one 10-byte replica."""

    site: Site
    stats: NodeStats
    clock: Clock
    query: str

    def text(self) -> str:
        return generate_latest(self.stats.registry).decode()


def node(tmp_path: Path, token: str = "") -> Node:
    """The node, its reserve 1024 bytes, its state always up."""
    files = NodeFiles(tmp_path)
    path = files.path(FILE_ID)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"0123456789")
    # A copy rsync is still writing: not a replica yet.
    (path.parent / f".{FILE_ID}.Xy12Zq").write_bytes(b"01234")
    clock = Clock()
    clock.advance(1_000_000)
    key = url_key(SECRET)
    query = signed_query(key, FILE_ID, 2_000_000, "digits.txt", "text/plain")
    config = load_node_config(environ={}, options={("node", "data_dir"): "unused"})
    stats = NodeStats()
    refresh = stats.watch(files, lambda free: "up", 1024, run_inline, clock)
    page = MetricsPage(stats.registry, token, refresh)
    site = download_site(files, key, clock, config.http, Drain(clock), stats, page)
    return Node(site, stats, clock, query)


@pytest_twisted.ensureDeferred()
async def test_requests_are_counted_by_route_template_never_by_their_path(
    app: Harness,
) -> None:
    """Two files' pages are one route; two unknown paths are the one
    'unmatched' route; an unknown method is 'other': no path or method a
    client sends becomes a label."""
    token = app.user("alice")
    for file_id in ("a" * 32, "b" * 32):
        missing = await app.call("GET", f"/files/{file_id}", headers=auth(token))
        assert missing.code == 404
    for path in ("/nowhere/1", "/nowhere/2"):
        assert (await app.call("GET", path)).code == 404
    assert (await app.call("BREW", "/health")).code == 405
    text = await scrape(app)
    assert value(text, REQUESTS, method="GET", route="/files/<file_id>", status="404")
    assert (
        value(text, REQUESTS, method="GET", route="/files/<file_id>", status="404") == 2
    )
    assert value(text, REQUESTS, method="GET", route="unmatched", status="404") == 2
    assert value(text, REQUESTS, method="other", route="/health", status="405") == 1
    routes = {dict(labels)["route"] for labels in labelled(text, REQUESTS)}
    assert routes == {"/files/<file_id>", "unmatched", "/health"}
    durations = "uploadd_http_request_duration_seconds_count"
    assert value(text, durations, method="GET", route="/files/<file_id>") == 2


def test_a_refusal_before_any_handler_ran_is_counted_once_with_its_route(
    tmp_path: Path,
) -> None:
    """An upload without a token is refused when its headers arrive (401,
    written by the request before any handler): counted once, by the
    route the gate matched, when its lingering connection closes."""
    app = harness(tmp_path)
    wire = connection(app.parts.site)
    wire.send(b"PUT /files/a.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
    assert wire.response()[0] == 401
    app.clock.advance(2.0)  # the linger ends: the connection is hung up
    close(wire)
    close(wire)
    text = exposed(app)
    assert labelled(text, REQUESTS) == {
        frozenset(
            {("method", "PUT"), ("route", "/files/<path:filename>"), ("status", "401")}
        ): 1.0
    }
    assert value(text, "uploadd_uploads_started_total", protocol="put") is None


@pytest.mark.parametrize("daemon", ["uploadd", "noded"])
def test_requests_the_connection_refuses_are_counted_with_what_it_wrote(
    tmp_path: Path, daemon: str
) -> None:
    """A head the parser refuses (400) is counted with its method and the
    unmatched route; a request line too long to read (414) with method
    'other': both daemons, once each."""
    if daemon == "uploadd":
        app = harness(tmp_path)
        site, text = app.parts.site, lambda: exposed(app)
    else:
        served = node(tmp_path)
        site, text = served.site, served.text
    name = f"{daemon}_http_requests_total"
    bad_header = connection(site)
    bad_header.send(b"GET /health HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n")
    assert bad_header.response()[0] == 400
    long_line = connection(site)
    long_line.send(b"GET /" + b"c" * 20000 + b" HTTP/1.1\r\n")
    assert long_line.response()[0] == 414
    close(bad_header)
    close(long_line)
    assert labelled(text(), name) == {
        frozenset({("method", "GET"), ("route", "unmatched"), ("status", "400")}): 1,
        frozenset({("method", "other"), ("route", "unmatched"), ("status", "414")}): 1,
    }


def test_a_request_whose_client_left_before_any_answer_is_counted_unanswered(
    tmp_path: Path,
) -> None:
    """A PUT whose client goes after 4 of 10 bytes: the request is counted
    with status 'none', the upload as failed, and no body is in flight."""
    app = harness(tmp_path)
    token = app.user("alice")
    wire = connection(app.parts.site)
    wire.send(
        b"PUT /files/a.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n\r\n0123"
    )
    close(wire)
    text = exposed(app)
    assert labelled(text, REQUESTS) == {
        frozenset(
            {("method", "PUT"), ("route", "/files/<path:filename>"), ("status", "none")}
        ): 1.0
    }
    assert value(text, "uploadd_uploads_total", protocol="put", outcome="failed") == 1
    assert value(text, "uploadd_upload_received_bytes_total", protocol="put") == 4
    assert value(text, "uploadd_upload_bodies_in_flight") == 0


def test_a_request_lasts_from_its_first_line_to_its_answer(tmp_path: Path) -> None:
    """A PUT whose body comes 3 s after its head: the request and the upload
    each took 3 s, on the server's clock."""
    app = harness(tmp_path)
    token = app.user("alice")
    wire = connection(app.parts.site)
    wire.send(
        b"PUT /files/a.bin HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n\r\n"
    )
    app.clock.advance(3)
    wire.send(b"0123456789")
    assert wire.response()[0] == 201
    text = exposed(app)
    route = "/files/<path:filename>"
    seconds = "uploadd_http_request_duration_seconds_sum"
    assert value(text, seconds, method="PUT", route=route) == 3.0
    assert value(text, "uploadd_upload_duration_seconds_sum", protocol="put") == 3.0


@pytest.mark.parametrize(
    "peer",
    [IPv4Address("TCP", "127.0.0.1", 5000), IPv6Address("TCP", "::1", 5000)],
    ids=str,
)
def test_without_a_token_metrics_answers_loopback_clients(
    tmp_path: Path, peer: IPv4Address | IPv6Address
) -> None:
    """[metrics] token empty: a client on this machine reads /metrics."""
    app = harness(tmp_path)
    wire = connect_from(app.parts.site, peer)
    wire.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
    status, headers, body = wire.response()
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert b"uploadd_upload_bodies_in_flight 0.0" in body


@pytest.mark.parametrize(
    ("peer", "header"),
    [
        (IPv4Address("TCP", "10.1.2.3", 5000), b""),
        (IPv4Address("TCP", "127.0.0.1", 5000), b"X-Forwarded-For: 10.1.2.3\r\n"),
        (IPv4Address("TCP", "127.0.0.1", 5000), b"Forwarded: for=10.1.2.3\r\n"),
    ],
    ids=["another host", "x-forwarded-for", "forwarded"],
)
@pytest.mark.parametrize("daemon", ["uploadd", "noded"])
def test_without_a_token_metrics_refuses_clients_elsewhere(
    tmp_path: Path, peer: IPv4Address, header: bytes, daemon: str
) -> None:
    """[metrics] token empty: a client on another host, or one a local
    proxy sends on, is refused 403 problem+json by both daemons."""
    site = harness(tmp_path).parts.site if daemon == "uploadd" else node(tmp_path).site
    wire = connect_from(site, peer)
    wire.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\n" + header + b"\r\n")
    status, headers, body = wire.response()
    assert status == 403
    assert headers["content-type"] == "application/problem+json"
    assert b"[metrics] token" in body


@pytest.mark.parametrize("daemon", ["uploadd", "noded"])
def test_with_a_token_metrics_wants_it_from_every_client(
    tmp_path: Path, daemon: str
) -> None:
    """[metrics] token set: no token or a wrong one is 401 (even from
    loopback), with a Bearer challenge; the token is read from anywhere."""
    if daemon == "uploadd":
        site = harness(tmp_path, settings={("metrics", "token"): TOKEN}).parts.site
    else:
        site = node(tmp_path, TOKEN).site
    here, there = IPv4Address("TCP", "127.0.0.1", 1), IPv4Address("TCP", "10.9.9.9", 1)
    asks = [
        (here, b"", 401),
        (here, b"Authorization: Bearer " + b"x" * 40 + b"\r\n", 401),
        (here, b"Authorization: Basic " + TOKEN.encode() + b"\r\n", 401),
        (there, b"Authorization: Bearer " + TOKEN.encode() + b"\r\n", 200),
        (here, b"Authorization: bearer " + TOKEN.encode() + b"\r\n", 200),
    ]
    for peer, header, expected in asks:
        wire = connect_from(site, peer)
        wire.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\n" + header + b"\r\n")
        status, headers, _ = wire.response()
        assert status == expected, header
        if expected == 401:
            assert headers["www-authenticate"] == 'Bearer realm="metrics"'
            assert headers["content-type"] == "application/problem+json"


@pytest_twisted.ensureDeferred()
async def test_a_node_counts_downloads_by_status_and_tells_its_space_and_replicas(
    tmp_path: Path,
) -> None:
    """noded's /metrics: downloads by status (a whole file, a range, a bad
    signature, a file it lacks) and the file bytes they sent; its requests
    by route; the replicas it holds, its space, reserve and state."""
    served = node(tmp_path)
    other = "cd" * 16
    asks = [
        (f"/files/{FILE_ID}?{served.query}", b"", 200),
        (f"/files/{FILE_ID}?{served.query}", b"Range: bytes=2-5\r\n", 206),
        (f"/files/{FILE_ID}?{served.query.replace('sig=', 'sig=0')}", b"", 403),
        (f"/files/{other}?{served.query}", b"", 403),
        ("/elsewhere", b"", 404),
    ]
    for path, header, expected in asks:
        wire = connection(served.site)
        wire.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n".encode() + header + b"\r\n")
        assert (await answered(wire))[0] == expected
        close(wire)
    wire = connection(served.site)
    wire.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
    status, _, body = wire.response()
    assert status == 200
    text = body.decode()
    assert labelled(text, "noded_downloads_total") == {
        frozenset({("status", "200")}): 1,
        frozenset({("status", "206")}): 1,
        frozenset({("status", "403")}): 2,
    }
    assert value(text, "noded_download_sent_bytes_total") == 10 + 4
    download = "/files/<file_id>"
    requests = "noded_http_requests_total"
    assert value(text, requests, method="GET", route=download, status="403") == 2
    assert value(text, requests, method="GET", route="unmatched", status="404") == 1
    assert value(text, "noded_stored_files") == 1
    assert value(text, "noded_stored_bytes") == 10
    assert (value(text, "noded_free_bytes") or 0) > 0
    assert (value(text, "noded_size_bytes") or 0) >= (
        value(text, "noded_free_bytes") or 0
    )
    assert value(text, "noded_reserved_bytes") == 1024
    assert value(text, "noded_state", state="up") == 1
    assert value(text, "noded_state", state="read-only") == 0
    close(wire)
    assert value(served.text(), requests, method="GET", route="/metrics", status="200")
