"""Malformed HTTP over real sockets to a real `twistd uploadd` and `twistd
noded`: each request of tests/malformed.py is answered within a second with
its status as problem+json, never a 500, a hang or a silent close."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from noded.files import NodeFiles
from noded.signing import signed_query, url_key
from tests.integration.daemon import start
from tests.integration.test_noded import SECRET, start_node
from tests.integration.wire import read_answer
from tests.malformed import CASES, Case, Target

pytestmark = pytest.mark.integration
FILE_ID = "ab" * 16


@pytest.fixture(scope="module")
def uploadd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Target]]:
    """A running uploadd holding one file and one open tus upload."""
    daemon = start(tmp_path_factory.mktemp("uploadd"))
    try:
        status, _, body = daemon.request("PUT", "/files/digits.txt", b"0123456789")
        assert status == 201, body
        tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "10"}
        status, headers, _ = daemon.request("POST", "/uploads/", None, **tus)
        assert status == 201
        upload = "/uploads/" + headers["Location"].rsplit("/", 1)[1]
        target = Target(
            "uploadd",
            f"/files/{json.loads(body)['id']}/content",
            f"Authorization: Bearer {daemon.token}\r\n",
            upload,
        )
        yield daemon.port, target
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def noded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Target]]:
    """A running noded holding one file, and a signed URL for it."""
    node = start_node(tmp_path_factory.mktemp("node"), "n1")
    try:
        path = NodeFiles(node.data_dir).path(FILE_ID)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"0123456789")
        expires = int(time.time()) + 3600
        query = signed_query(
            url_key(SECRET.encode()), FILE_ID, expires, "digits.txt", "text/plain"
        )
        yield node.ports["http"], Target("noded", f"/files/{FILE_ID}?{query}")
    finally:
        node.stop()


@pytest.mark.parametrize(
    ("daemon", "case"),
    [(daemon, case) for case in CASES for daemon in case.daemons],
    ids=str,
)
def test_a_malformed_request_is_answered_within_a_second(
    daemon: str, case: Case, request: pytest.FixtureRequest
) -> None:
    """On a fresh connection the table's request gets its status, as
    problem+json, whole within a second (and a redirect says where to go)."""
    port, target = request.getfixturevalue(daemon)
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        started = time.monotonic()
        sock.sendall(case.build(target))
        answer = read_answer(sock, started)
        took = time.monotonic() - started
    assert answer.status == case.status, answer.body[:300]
    assert answer.problem  # problem+json, its status field the status
    assert took < 1.0
    if case.location is not None:
        assert answer.header("location") == case.location(target)
