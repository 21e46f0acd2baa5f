"""The ingest gate on a raw HTTP channel: what happens before and during a body.

These drive Site's protocol with bytes through a StringTransport so the tests
see exactly what reaches the wire (100 Continue or not) and whether reading
was paused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from tests.support import Connection, Harness, auth, connection, harness, now

HOST = IPv4Address("TCP", "127.0.0.1", 8080)


@attrs.define
class HeldRunner:
    """A Runner whose jobs wait until the test releases them."""

    jobs: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = attrs.field(
        factory=list
    )

    def __call__(self, function: Callable[..., Any], /, *args: Any) -> Deferred[Any]:
        waiting: Deferred[Any] = Deferred()
        self.jobs.append((function, args, waiting))
        return waiting

    def release(self) -> int:
        jobs, self.jobs = self.jobs, []
        for function, args, waiting in jobs:
            maybeDeferred(function, *args).chainDeferred(waiting)
        return len(jobs)


def connect(app: Harness) -> Connection:
    return connection(app.parts.site)


def head(token: str | None, path: str = "/files/a.bin", **headers: str) -> bytes:
    lines = [f"PUT {path} HTTP/1.1", "Host: uploadd"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_expect_continue_is_answered_only_after_admission(app: Harness) -> None:
    """An admitted upload gets '100 Continue'; the body is then stored."""
    token = app.user("alice")
    wire = connect(app)
    wire.send(head(token, Content_Length="5", Expect="100-continue"))
    assert wire.output() == b"HTTP/1.1 100 Continue\r\n\r\n"
    wire.send(b"hello")
    assert b"HTTP/1.1 201 Created" in wire.output()


def test_no_token_is_401_without_continue_and_without_reading(app: Harness) -> None:
    """Missing auth: 401 at once, no 100 Continue, connection closing."""
    wire = connect(app)
    wire.send(head(None, Content_Length="1000000", Expect="100-continue"))
    out = wire.output()
    assert out.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"100 Continue" not in out
    assert b"Connection: close" in out
    assert app.staged() == []


def test_too_large_is_413_before_the_body(app: Harness) -> None:
    """Content-Length over max_upload_size: 413 naming the limit, nothing staged."""
    token = app.user("alice")
    wire = connect(app)
    wire.send(head(token, Content_Length=str(11 * 1024**3), Expect="100-continue"))
    out = wire.output()
    assert out.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in out
    assert b'"limit": 10737418240' in out
    assert app.staged() == []


def test_a_refused_body_is_drained_briefly_then_the_connection_closes(
    app: Harness,
) -> None:
    """After a refusal, body bytes already sent are dropped; the server hangs up
    when they pass the linger budget (a refused body of an S3 part's size is
    drained whole) or the linger time."""
    wire = connect(app)
    wire.send(head(None, Content_Length=str(40 * 1024 * 1024)))
    assert not wire.transport.disconnecting
    wire.send(b"x" * 6 * 1024 * 1024)
    assert not wire.transport.disconnecting
    wire.send(b"x" * 12 * 1024 * 1024)
    assert wire.transport.disconnecting
    quiet = connect(app)
    quiet.send(head(None, Content_Length="10"))
    app.clock.advance(2.5)
    assert quiet.transport.disconnecting


def test_chunked_body_over_the_limit_is_cut_off_with_413(tmp_path: Path) -> None:
    """A chunked upload passing max_upload_size is answered 413 mid-stream and
    its staging file removed."""
    app = harness(tmp_path, settings={("http", "max_upload_size"): "1K"})
    token = app.user("alice")
    wire = connect(app)
    wire.send(head(token, Transfer_Encoding="chunked"))
    wire.send(b"200\r\n" + b"a" * 512 + b"\r\n")
    assert len(app.staged()) == 1
    wire.send(b"400\r\n" + b"b" * 1024 + b"\r\n")
    assert b"HTTP/1.1 413 " in wire.output()
    assert app.staged() == []
    assert app.store.files == {}


def test_chunked_body_within_the_limit_is_stored(app: Harness) -> None:
    """Chunked transfer encoding is taken as a stream of unknown length."""
    token = app.user("alice")
    wire = connect(app)
    wire.send(head(token, Transfer_Encoding="chunked"))
    wire.send(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert b"HTTP/1.1 201 Created" in wire.output()
    (record,) = app.store.files.values()
    assert app.parts.blobs.path(record.id).read_bytes() == b"hello world"


def test_disconnect_mid_body_leaves_no_file_and_no_record(app: Harness) -> None:
    """A client that vanishes mid-body leaves nothing staged and nothing recorded."""
    token = app.user("alice")
    wire = connect(app)
    wire.send(head(token, Content_Length="100000", X_Progress_ID="gone"))
    wire.send(b"x" * 40000)
    assert len(app.staged()) == 1
    wire.protocol.connectionLost(Failure(ConnectionError("client went away")))
    assert app.staged() == []
    assert app.store.files == {}
    assert app.parts.gate.in_flight == 0
    progress = app.parts.progress.get("gone", now(app.store.get_user("alice")).id)  # type: ignore[union-attr]
    assert progress is not None and progress.state == "failed"


def held_app(tmp_path: Path, **options: str) -> tuple[Harness, HeldRunner]:
    """An app whose writer jobs wait for the test; options as section__key."""
    runner = HeldRunner()
    settings = {(k.split("__")[0], k.split("__")[1]): v for k, v in options.items()}
    return harness(tmp_path, runner, settings=settings), runner


def test_reading_pauses_above_high_water_and_resumes_below_low(
    tmp_path: Path,
) -> None:
    """While the disk lags, the socket is paused; it resumes once the writer
    catches up below low water."""
    app, runner = held_app(tmp_path, ingest__high_water="64K", ingest__low_water="16K")
    token = app.user("alice")
    wire = connect(app)
    wire.send(head(token, Content_Length=str(200 * 1024)))
    wire.send(b"a" * 32 * 1024)
    assert wire.transport.producerState == "producing"
    wire.send(b"b" * 48 * 1024)
    assert wire.transport.producerState == "paused"
    while runner.release():
        pass
    assert wire.transport.producerState == "producing"
    wire.send(b"c" * 120 * 1024)
    while runner.release():
        pass
    assert b"HTTP/1.1 201 Created" in wire.output()


def test_idle_timeout_is_reset_by_disk_progress(tmp_path: Path) -> None:
    """While reading is paused, each batch reaching disk restarts the idle
    timer; once nothing moves for idle_timeout the connection is closed."""
    app, runner = held_app(
        tmp_path,
        http__idle_timeout="10s",
        ingest__high_water="64K",
        ingest__low_water="16K",
    )
    token = app.user("alice")
    wire = connect(app)
    wire.send(head(token, Content_Length=str(1024 * 1024)))
    wire.send(b"a" * 100 * 1024)
    wire.send(b"b" * 100 * 1024)
    assert wire.transport.producerState == "paused"
    app.clock.advance(8)
    assert runner.release() == 1  # the first batch reaches disk
    app.clock.advance(8)
    assert not wire.transport.disconnecting  # 16 s after the last byte arrived
    assert runner.release() == 1  # the second batch
    app.clock.advance(9)
    assert not wire.transport.disconnecting
    app.clock.advance(2)
    assert wire.transport.disconnecting


def test_progress_is_visible_while_the_body_streams(tmp_path: Path) -> None:
    """Mid-upload, /progress/<key> on another connection shows the bytes so far."""
    app, runner = held_app(tmp_path)
    token = app.user("alice")
    upload = connect(app)
    upload.send(head(token, Content_Length="300000", X_Progress_ID="live"))
    upload.send(b"a" * 100_000)
    runner.release()
    poll = connect(app)
    poll.send(
        b"GET /progress/live HTTP/1.1\r\nHost: uploadd\r\n"
        + f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    reply = poll.output()
    assert b"HTTP/1.1 200 OK" in reply
    document = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert document["state"] == "uploading"
    assert (document["received"], document["expected"]) == (100_000, 300_000)
    assert document["percent"] == 33.3


def test_long_resumable_bodies_record_checkpoints_as_they_arrive(
    tmp_path: Path,
) -> None:
    """With [uploads] checkpoint = 4K, a tus PATCH and a Content-Range chunk
    of a known upload record their durable offset every 4 KiB while their
    bodies still stream, and keep it when the client goes away."""
    app = harness(tmp_path, settings={("uploads", "checkpoint"): "4K"})
    token = app.user("alice")
    tus = now(
        app.call(
            "POST",
            "/uploads/",
            headers={
                **auth(token),
                "Tus-Resumable": ["1.0.0"],
                "Upload-Length": ["65536"],
            },
        )
    )
    upload_id = str(tus.header("location")).rsplit("/", 1)[-1]
    wire = connect(app)
    wire.send(
        head(
            token,
            f"/uploads/{upload_id}",
            Content_Length="65536",
            Tus_Resumable="1.0.0",
            Upload_Offset="0",
            Content_Type="application/offset+octet-stream",
        ).replace(b"PUT ", b"PATCH ", 1)
    )
    wire.send(b"a" * 9000)
    assert now(app.store.get_upload(upload_id)).received >= 8192  # type: ignore[union-attr]
    wire.protocol.connectionLost(Failure(ConnectionDone()))
    assert now(app.store.get_upload(upload_id)).received == 9000  # type: ignore[union-attr]

    first = now(
        app.call(
            "PUT",
            "/storage/tmp-upload/",
            headers={**auth(token), "Content-Range": ["bytes 0-9/65536"]},
            data=b"0123456789",
        )
    )
    range_id = first.json()["id"]
    wire = connect(app)
    wire.send(
        head(
            token,
            f"/storage/tmp-upload/{range_id}/",
            Content_Length="20000",
            Content_Range="bytes 10-20009/65536",
        )
    )
    wire.send(b"b" * 9000)
    ranges = now(app.store.get_upload(range_id)).ranges  # type: ignore[union-attr]
    assert ranges[0][0] == 0 and ranges[0][1] >= 10 + 8192
