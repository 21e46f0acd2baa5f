"""Direct reads on their own: a sink taking a socket over from a stand-in
for Twisted's channel, with the thread jobs run inline."""

from __future__ import annotations

import errno
import hashlib
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.web.http import _IdentityTransferDecoder

from noded.threads import run_inline
from uploadd.api.problems import problem_of
from uploadd.errors import UploaddError
from uploadd.ingest.blob import BlobFile, Digest, Hashes
from uploadd.ingest.direct import SocketSource
from uploadd.ingest.sink import Checkpoints, FlowLimits, SinkState, UploadSink


class Channel:
    """The reactor's side of one connection: a transport whose ``doRead``
    hands what the socket has to the body's decoder, as Twisted's would."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.connected = True
        self.disconnecting = False
        self.reading = True
        self.decoder: _IdentityTransferDecoder | None = None
        self.ended = False
        #: Bytes the channel itself read.
        self.read = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def stopReading(self) -> None:
        self.reading = False

    def startReading(self) -> None:
        self.reading = True

    def pauseProducing(self) -> None:
        self.stopReading()

    def resumeProducing(self) -> None:
        if self.connected and not self.disconnecting:
            self.startReading()

    def doRead(self) -> None:
        assert self.decoder is not None
        try:
            data = self.sock.recv(64 * 1024)
        except BlockingIOError:
            return
        if not data:
            self.connected = False
            return
        self.read += len(data)
        self.decoder.dataReceived(data)

    def pump(self, sink: UploadSink, seconds: float = 5.0, idle: bool = False) -> None:
        """Run the reactor until the body ends or fails (``idle``: or the
        socket has nothing more for now)."""
        deadline = time.monotonic() + seconds
        while sink.state is SinkState.RECEIVING and not self.ended:
            assert time.monotonic() < deadline, "the body stalled"
            if not self.reading:
                continue
            readable, _, _ = select.select([self.sock], [], [], 0.1)
            if idle and not readable:
                return
            self.doRead()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    client, server = socket.socketpair()
    server.setblocking(False)
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def body_sink(
    channel: Channel,
    target: BlobFile,
    length: int,
    max_size: int | None = None,
) -> tuple[UploadSink, list[UploaddError], list[int]]:
    """A sink for a body of ``length`` bytes arriving on ``channel``, read
    directly once it streams."""
    refused: list[UploaddError] = []
    aborted: list[int] = []
    sink = UploadSink(
        target,
        run_inline,
        channel,
        FlowLimits(1 << 20, 1 << 18, max_size),
        on_reject=refused.append,
        on_aborted=aborted.append,
        read=run_inline,
    )

    def ended(rest: bytes) -> None:
        channel.ended = True

    channel.decoder = _IdentityTransferDecoder(length, sink.write, ended)
    sink.read_directly(SocketSource(channel, channel.decoder))
    return sink, refused, aborted


def deliver(
    client: socket.socket, channel: Channel, sink: UploadSink, body: bytes
) -> Digest:
    """``body``'s first 1000 bytes through the channel, the rest sent by the
    client meanwhile; the sink's digest once the body ended."""
    assert channel.decoder is not None
    channel.decoder.dataReceived(body[:1000])
    feeder = threading.Thread(target=client.sendall, args=(body[1000:],))
    feeder.start()
    channel.pump(sink)
    feeder.join(5)
    digest: list[Digest] = []
    sink.complete().addCallback(digest.append)
    return digest[0]


def test_a_body_past_its_limit_writes_nothing_past_it(
    tmp_path: Path, pair: tuple[socket.socket, socket.socket]
) -> None:
    """A body whose Content-Length is more than its plan takes (a chunk
    larger than its span, an append larger than the upload's room) is
    refused with 413 as it crosses the limit, and no byte past the limit
    reaches the upload's file or is kept by the abort: it would overwrite
    the bytes of another span or run past the upload's length."""
    client, server = pair
    path = tmp_path / "upload.bin"
    path.write_bytes(b"")
    target = BlobFile(path, fsync=False, offset=0, hashes=Hashes())
    limit = 60_000
    body = os.urandom(2 * 1024 * 1024)
    channel = Channel(server)
    sink, refused, aborted = body_sink(channel, target, len(body), max_size=limit)
    # The first bytes came with the head; more wait in the socket.
    assert channel.decoder is not None
    channel.decoder.dataReceived(body[:1000])
    client.sendall(body[1000:121_000])
    channel.pump(sink)
    assert [problem_of(p).status for p in refused] == [413]
    assert sink.state is SinkState.FAILED
    assert aborted and aborted[0] <= limit
    assert path.stat().st_size <= limit


def test_a_body_read_directly_is_stored_whole(
    tmp_path: Path, pair: tuple[socket.socket, socket.socket]
) -> None:
    """The harness itself: a body arriving in bursts is read by the thread
    jobs up to its tail, which the channel reads, and stored whole."""
    client, server = pair
    path = tmp_path / "new.bin"
    body = os.urandom(3 * 1024 * 1024 + 5)
    channel = Channel(server)
    sink, refused, _ = body_sink(channel, BlobFile(path, fsync=False), len(body))
    assert deliver(client, channel, sink, body).sha256 == (
        hashlib.sha256(body).hexdigest()
    )
    assert refused == []
    assert path.read_bytes() == body
    assert "doRead" not in vars(channel)
    assert channel.read <= 2 * 64 * 1024


def test_no_descriptor_to_spare_leaves_the_body_to_the_channel(
    tmp_path: Path,
    pair: tuple[socket.socket, socket.socket],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process out of descriptors (EMFILE) cannot duplicate the socket:
    the body is read by the channel as any other, not failed (nor the
    connection dropped by an exception out of the channel's read)."""
    client, server = pair
    path = tmp_path / "new.bin"
    body = os.urandom(1024 * 1024)
    channel = Channel(server)
    sink, refused, _ = body_sink(channel, BlobFile(path, fsync=False), len(body))

    def no_room(fd: int) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(os, "dup", no_room)
    assert deliver(client, channel, sink, body).sha256 == (
        hashlib.sha256(body).hexdigest()
    )
    assert refused == []
    assert "doRead" not in vars(channel)


class Jobs:
    """A Runner holding each job until the test runs it."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Any, tuple[Any, ...], Deferred[Any]]] = []

    def __call__(self, function: Any, /, *args: Any) -> Deferred[Any]:
        done: Deferred[Any] = Deferred()
        self.waiting.append((function, args, done))
        return done

    def run_one(self) -> None:
        function, args, done = self.waiting.pop(0)
        try:
            value = function(*args)
        except Exception:
            done.errback()
        else:
            done.callback(value)


def fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def waiting_sink(
    path: Path, server: socket.socket
) -> tuple[UploadSink, Channel, SocketSource, Jobs, list[int]]:
    """A body adding to the empty upload file ``path`` whose first 1000
    bytes came through the channel: it reads directly, its thread jobs
    waiting in ``Jobs`` for the test."""
    path.write_bytes(b"")
    jobs = Jobs()
    channel = Channel(server)
    aborted: list[int] = []
    sink = UploadSink(
        BlobFile(path, fsync=False, offset=0, hashes=Hashes()),
        run_inline,
        channel,
        FlowLimits(1 << 20, 1 << 18, None),
        on_aborted=aborted.append,
        read=jobs,
    )
    channel.decoder = _IdentityTransferDecoder(4 << 20, sink.write, lambda r: None)
    source = SocketSource(channel, channel.decoder)
    sink.read_directly(source)
    channel.decoder.dataReceived(b"x" * 1000)
    return sink, channel, source, jobs, aborted


@pytest.mark.parametrize("how", ["abort", "reject"])
def test_a_body_ended_while_a_job_reads_gives_the_socket_back_after_it(
    tmp_path: Path, pair: tuple[socket.socket, socket.socket], how: str
) -> None:
    """A body aborted (the client went, a newer request cut it) or refused
    (the server shuts down) while a thread job reads its socket: the
    duplicate stays open until the job ends, then closes; the channel
    reads again (a refusal drains the rest); the body settles."""
    client, server = pair
    path = tmp_path / "upload.bin"
    sink, channel, source, jobs, aborted = waiting_sink(path, server)
    client.sendall(b"y" * 100_000)
    assert len(jobs.waiting) == 1
    dup = source.descriptor()
    assert dup is not None
    settled: list[object] = []
    sink.settled().addCallback(settled.append)
    if how == "abort":
        channel.connected = False
        sink.abort()
    else:
        sink.abort()
        channel.resumeProducing()
    assert fd_open(dup)
    assert not settled
    jobs.run_one()
    assert not fd_open(dup)
    assert "doRead" not in vars(channel) and "resumeProducing" not in vars(channel)
    assert channel.reading is (how == "reject")
    assert settled
    assert aborted == [path.stat().st_size]
    assert jobs.waiting == []


def test_a_job_failing_after_the_body_ended_still_lets_it_settle(
    tmp_path: Path, pair: tuple[socket.socket, socket.socket]
) -> None:
    """A thread job that raises (not a read or write error it reports)
    after the body was aborted: the body is still discarded and recorded,
    so its settled() fires (the drain and the upload's next writer wait
    on it)."""
    _client, server = pair
    path = tmp_path / "upload.bin"
    sink, channel, source, jobs, aborted = waiting_sink(path, server)
    dup = source.descriptor()
    assert dup is not None and len(jobs.waiting) == 1
    settled: list[object] = []
    sink.settled().addCallback(settled.append)
    channel.connected = False
    sink.abort()
    _, _, done = jobs.waiting.pop()
    done.errback(RuntimeError("a bug in the job"))
    assert not fd_open(dup)
    assert settled
    assert aborted == [1000]


class Filling(BlobFile):
    """A file on a disk that is full after ``room`` bytes."""

    room = 0

    def take(self, view: memoryview) -> None:
        if self.written + len(view) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().take(view)


def test_a_full_disk_during_a_direct_read_cuts_back_to_the_checkpoint(
    tmp_path: Path, pair: tuple[socket.socket, socket.socket]
) -> None:
    """The disk fills while a thread job reads: 507, the file is cut back to
    the last committed checkpoint, and the channel reads (and drops) the
    rest so the client can read the answer."""
    client, server = pair
    path = tmp_path / "upload.bin"
    path.write_bytes(b"")
    target = Filling(path, fsync=False, offset=0, hashes=Hashes())
    target.room = 150_000
    channel = Channel(server)
    refused: list[UploaddError] = []
    aborted: list[int] = []
    committed: list[int] = []

    def commit(written: int) -> Deferred[None]:
        committed.append(written)
        done: Deferred[None] = Deferred()
        done.callback(None)
        return done

    sink = UploadSink(
        target,
        run_inline,
        channel,
        FlowLimits(1 << 20, 1 << 18, None),
        on_reject=refused.append,
        on_aborted=aborted.append,
        checkpoints=Checkpoints(50_000, commit),
        read=run_inline,
    )
    channel.decoder = _IdentityTransferDecoder(4 << 20, sink.write, lambda r: None)
    sink.read_directly(SocketSource(channel, channel.decoder))
    channel.decoder.dataReceived(b"x" * 1000)
    client.sendall(b"y" * 100_000)
    channel.pump(sink, idle=True)
    assert sink.state is SinkState.RECEIVING and committed == [101_000]
    client.sendall(b"z" * 100_000)
    channel.pump(sink)
    assert [problem_of(p).status for p in refused] == [507]
    assert committed == [101_000]
    assert aborted == [101_000]
    assert path.stat().st_size == 101_000
    assert "doRead" not in vars(channel) and channel.reading
