"""Malformed HTTP in memory: every request of tests/malformed.py gets its 4xx
(or redirect) as problem+json from both daemons at once, never a 500 or a
silence; refusals close the connection after a short linger."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
from twisted.internet.task import Clock
from twisted.web.server import Site

from noded.channel import LINGER_SECONDS
from noded.config import load_config as load_node_config
from noded.download import Unsatisfiable, parse_range
from noded.drain import Drain
from noded.files import NodeFiles
from noded.http import download_site
from noded.signing import signed_query, url_key
from tests.malformed import CASES, Case, Target
from tests.support import Connection, connection, harness
from uploadd.api.metadata import parse_metadata
from uploadd.api.problems import Problem

FILE_ID = "ab" * 16
SECRET = b"c" * 40


@attrs.define
class Served:
    site: Site
    clock: Clock
    target: Target

    def send(self, data: bytes) -> Connection:
        wire = connection(self.site)
        wire.send(data)
        return wire


def uploadd(tmp_path: Path) -> Served:
    app = harness(tmp_path)
    auth = f"Authorization: Bearer {app.user('alice')}\r\n"
    stored = connection(app.parts.site)
    stored.send(
        f"PUT /files/digits.txt HTTP/1.1\r\nHost: t\r\n{auth}"
        "Content-Length: 10\r\n\r\n0123456789".encode()
    )
    status, _, body = stored.response()
    assert status == 201, body
    created = connection(app.parts.site)
    created.send(
        f"POST /uploads/ HTTP/1.1\r\nHost: t\r\n{auth}Tus-Resumable: 1.0.0\r\n"
        "Upload-Length: 10\r\n\r\n".encode()
    )
    status, headers, _ = created.response()
    assert status == 201
    upload = "/uploads/" + headers["location"].rsplit("/", 1)[1]
    target = Target("uploadd", f"/files/{json.loads(body)['id']}/content", auth, upload)
    return Served(app.parts.site, app.clock, target)


def noded(tmp_path: Path) -> Served:
    files = NodeFiles(tmp_path)
    path = files.path(FILE_ID)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"0123456789")
    clock = Clock()
    clock.advance(1_000_000)
    key = url_key(SECRET)
    query = signed_query(key, FILE_ID, 2_000_000, "digits.txt", "text/plain")
    config = load_node_config(environ={}, options={("node", "data_dir"): "unused"})
    site = download_site(files, key, clock, config.http, Drain(clock))
    return Served(site, clock, Target("noded", f"/files/{FILE_ID}?{query}"))


SERVERS = {"uploadd": uploadd, "noded": noded}


@pytest.mark.parametrize(
    ("daemon", "case"),
    [(daemon, case) for case in CASES for daemon in case.daemons],
    ids=lambda value: str(value),
)
def test_a_malformed_request_gets_its_problem_at_once(
    daemon: str, case: Case, tmp_path: Path
) -> None:
    """The table's request is answered without waiting, with its status and a
    problem+json body (and, for a redirect, where to go)."""
    served = SERVERS[daemon](tmp_path)
    wire = served.send(case.build(served.target))
    status, headers, body = wire.response()
    assert status == case.status, body
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == case.status
    if case.location is not None:
        assert headers["location"] == case.location(served.target)


@pytest.mark.parametrize("daemon", ["uploadd", "noded"])
def test_a_refused_request_is_closed_after_a_short_linger(
    daemon: str, tmp_path: Path
) -> None:
    """After a framing error the answer says Connection: close, and the
    connection is closed once the client had LINGER_SECONDS to read it."""
    served = SERVERS[daemon](tmp_path)
    wire = served.send(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n")
    status, headers, _ = wire.response()
    assert (status, headers["connection"]) == (400, "close")
    wire.send(b"more bytes of a body nobody reads")
    assert not wire.transport.disconnecting
    served.clock.advance(LINGER_SECONDS)
    assert wire.transport.disconnecting


def test_a_node_failure_is_a_problem_not_an_html_page(tmp_path: Path) -> None:
    """An unexpected error while serving a download is a 500 problem+json
    naming an incident, never Twisted's HTML page."""
    served = noded(tmp_path)
    path = NodeFiles(tmp_path).path(FILE_ID)
    path.unlink()
    path.mkdir()  # opening it fails with IsADirectoryError
    wire = served.send(_get(served.target.get))
    status, headers, body = wire.response()
    assert status == 500
    assert headers["content-type"] == "application/problem+json"
    assert "incident" in json.loads(body)["detail"]


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: node\r\n\r\n".encode()


def test_byte_ranges_of_any_length_are_read_without_converting_them() -> None:
    """Positions of thousands of digits are past the end (416), clamp to the
    end, or ask for the whole file, as the same numbers with fewer digits."""
    huge = "9" * 5000
    with pytest.raises(Unsatisfiable):
        parse_range(f"bytes={huge}-", 10)
    assert parse_range(f"bytes=2-{huge}", 10) == (2, 9)
    assert parse_range(f"bytes=-{huge}", 10) == (0, 9)
    assert parse_range(f"bytes=0000{'0' * 5000}3-4", 10) == (3, 4)


@pytest.mark.parametrize(
    "header",
    [
        "filename Zm9v=",  # excess padding
        "filename Zh==",  # bits beyond the last byte
        "filename  Zm9v",  # two spaces
        "filename Zm9v,,type YQ==",  # an empty pair
        ",filename Zm9v",
        "filename Zm9v,",
        "filename Zm9v,filename YQ==",
        "file\x01name Zm9v",
    ],
)
def test_upload_metadata_that_is_not_key_base64_pairs_is_refused(header: str) -> None:
    """tus Upload-Metadata: every pair has a non-empty unique key and at most
    one canonical base64 value; anything else is a 400."""
    with pytest.raises(Problem) as refused:
        parse_metadata(header)
    assert refused.value.status == 400


def test_upload_metadata_pairs_are_read() -> None:
    """Keys with and without values, spaces around the commas."""
    assert parse_metadata("filename Zm9v , confidential,type YQ==") == {
        "filename": "foo",
        "confidential": "",
        "type": "a",
    }
