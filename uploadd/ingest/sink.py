"""The upload sink: a request body streamed to disk with hashing and backpressure.

:class:`UploadSink` stands in for ``request.content`` on upload routes. The
reactor thread only queues the chunks it receives; a writer thread pool hashes
and writes them, one batch in flight per upload, sha256 and the write in one
lane and md5 in another so both hashes run alongside each other. When more than
``high_water`` bytes wait, reading from the socket is paused; below
``low_water`` it resumes. Memory is bounded by ``high_water`` plus one socket
read, whatever the body's size.

A body that adds to a resumable upload may checkpoint: every so many bytes
on disk the file is fsynced and the owner commits the new offset, so a body
cut by a crash keeps what reached disk. A body that fails because the disk
did (full, broken) is cut back to its last checkpoint, returning the space.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from noded.threads import Runner
from uploadd import errors

log = Logger()


class FlowControl(Protocol):
    """The read side of a transport: what backpressure acts on."""

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...


@attrs.frozen
class Digest:
    """What one body left behind: its size, the running hashes after it, and
    the digest of the body alone when a per-body checksum was asked for.
    ``md5`` is empty when it was not computed."""

    size: int
    sha256: str
    md5: str
    check: bytes | None = None


@attrs.frozen
class FlowLimits:
    high_water: int
    low_water: int
    max_size: int | None


@attrs.frozen
class Checkpoints:
    """Every ``every`` bytes on disk, fsync and ``commit(n)``: ``n`` bytes of
    this body are durable (the owner records the offset they reach)."""

    every: int
    commit: Callable[[int], Deferred[None]]


@attrs.define
class Hashes:
    """sha256 (always) and md5 (where wanted) of a file's bytes from its start
    up to ``size``.

    A resumable upload keeps one across requests so the file's sums are ready
    when its last byte lands; ``copy()`` snapshots it before a body that may
    be discarded. Without md5 the file's md5 is unknown: an empty string in
    its :class:`Digest`, never a made-up value.
    """

    sha256: Any = attrs.field(factory=hashlib.sha256)
    md5: Any = None
    size: int = 0

    @classmethod
    def fresh(cls, md5: bool) -> Hashes:
        return cls(md5=hashlib.md5(usedforsecurity=False) if md5 else None)

    def copy(self) -> Hashes:
        md5 = self.md5.copy() if self.md5 is not None else None
        return Hashes(self.sha256.copy(), md5, self.size)

    def digest(self, check: bytes | None = None) -> Digest:
        return Digest(
            self.size,
            self.sha256.hexdigest(),
            self.md5.hexdigest() if self.md5 is not None else "",
            check,
        )


class BlobFile:
    """The thread side: one open file, the running hashes, an optional checksum.

    Either a new file (created exclusively; its md5 computed too with
    ``md5``) or, with ``offset``, an existing one written from ``offset`` on,
    continuing ``hashes``. Methods run on writer threads, never two
    at once for the same lane; the two lanes touch disjoint state.
    """

    def __init__(
        self,
        path: Path,
        fsync: bool,
        *,
        offset: int | None = None,
        hashes: Hashes | None = None,
        check: Any = None,
        md5: bool = False,
    ) -> None:
        self.path = path
        self.resuming = offset is not None
        self._offset = offset or 0
        self._fsync = fsync
        if offset is None:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        else:
            self._fd = os.open(path, os.O_WRONLY)
            os.lseek(self._fd, offset, os.SEEK_SET)
        self.hashes = Hashes.fresh(md5) if hashes is None and offset is None else hashes
        self._check = check
        self.written = 0
        self._open = True

    def write_sha256(self, chunks: list[bytes]) -> None:
        sha256 = self.hashes.sha256 if self.hashes is not None else None
        for chunk in chunks:
            if sha256 is not None:
                sha256.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._fd, view) :]
            self.written += len(chunk)

    @property
    def beside(self) -> bool:
        """Whether anything runs in a second lane beside sha256 and the write."""
        md5 = self.hashes.md5 if self.hashes is not None else None
        return md5 is not None or self._check is not None

    def update_beside(self, chunks: list[bytes]) -> None:
        md5 = self.hashes.md5 if self.hashes is not None else None
        for chunk in chunks:
            if md5 is not None:
                md5.update(chunk)
            if self._check is not None:
                self._check.update(chunk)

    def close(self) -> Digest:
        try:
            if self._fsync:
                os.fsync(self._fd)
        finally:
            self._open = False
            os.close(self._fd)
        check = self._check.digest() if self._check is not None else None
        hashes = self.hashes
        if hashes is None:
            return Digest(self.written, "", "", check)
        hashes.size += self.written
        return attrs.evolve(hashes.digest(check), size=self.written)

    def sync(self) -> None:
        """Make the bytes written so far durable (a checkpoint)."""
        os.fsync(self._fd)

    def discard(self, keep: int | None = None) -> int:
        """Give up on this body: a new file is removed; an existing one keeps
        the bytes written so far (or only the first ``keep`` of them), made
        durable. Returns how many bytes of this body it keeps."""
        was_open, self._open = self._open, False
        if self.resuming:
            kept = self.written if keep is None else min(keep, self.written)
            try:
                if keep is not None:
                    # Cut back first: this may be all the room the disk has.
                    os.truncate(self.path, self._offset + kept)
                if was_open:
                    os.fsync(self._fd)
            finally:
                if was_open:
                    os.close(self._fd)
            return kept
        if was_open:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self.path.unlink(missing_ok=True)
        return 0


class StreamedContent:
    """The file-like face twisted.web wants of ``request.content`` (it calls
    tell, seek and close; resources may read) for a body that is not kept in
    memory: positions report the bytes received, reads find nothing."""

    received: int

    def tell(self) -> int:
        return self.received

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.received

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        """The request ended; the owner of the body decides what that means."""


class SinkState(enum.Enum):
    RECEIVING = "receiving"
    ENDING = "ending"
    DONE = "done"
    FAILED = "failed"


@attrs.define(eq=False)
class _Lane:
    """One thread-side job over the body (sha256 + write, or md5), fed in order.

    Each lane runs at most one batch at a time, so a lane sees the chunks in
    order; the two lanes do not wait for each other.
    """

    work: Callable[[list[bytes]], None]
    queue: list[bytes] = attrs.field(factory=list)
    queued: int = 0
    busy: int = 0
    done: int = 0

    def push(self, data: bytes) -> None:
        self.queue.append(data)
        self.queued += len(data)

    @property
    def idle(self) -> bool:
        return not self.busy and not self.queue


@attrs.define(eq=False)
class UploadSink(StreamedContent):
    """``request.content`` for an upload: see the module docstring.

    ``on_progress(n)`` is called in the reactor thread each time ``n`` more
    bytes are on disk and hashed; ``on_reject(problem)`` when the body must be
    refused mid-stream (over the size limit, or the disk failed).
    """

    _blob: BlobFile
    _run: Runner
    _flow: FlowControl
    _limits: FlowLimits
    _on_progress: Callable[[int], None] = lambda n: None
    _on_reject: Callable[[errors.UploaddError], None] = lambda error: None
    _on_aborted: Callable[[int], object] = lambda n: None
    _checkpoints: Checkpoints | None = None

    received: int = 0
    written: int = 0
    #: Bytes of this body durable and committed by the last checkpoint.
    checkpointed: int = 0
    _syncing: bool = False
    #: Failed because storage did: keep only what the checkpoints committed.
    _storage_failed: bool = False
    _discarded: bool = False
    _cleaned: bool = False
    _settle_waiters: list[Deferred[None]] = attrs.field(factory=list)
    state: SinkState = SinkState.RECEIVING
    _lanes: list[_Lane] = attrs.field(init=False)
    _paused: bool = False
    _closing: bool = False
    _closed_file: bool = False
    _done: list[Deferred[Digest]] = attrs.field(factory=list)
    _digest: Digest | None = None
    _error: Failure | None = None

    def __attrs_post_init__(self) -> None:
        self._lanes = [_Lane(self._blob.write_sha256)]
        if self._blob.beside:
            self._lanes.append(_Lane(self._blob.update_beside))

    # -- the file-like face Twisted uses -------------------------------------

    def write(self, data: bytes) -> None:
        if self.state is not SinkState.RECEIVING:
            return
        self.received += len(data)
        limit = self._limits.max_size
        if limit is not None and self.received > limit:
            self._fail(Failure(errors.TooLarge(limit)), reject=True)
            return
        for lane in self._lanes:
            lane.push(data)
            self._kick(lane)
        if not self._paused and self._waiting() > self._limits.high_water:
            self._paused = True
            self._flow.pauseProducing()

    # -- the handler's face --------------------------------------------------

    def complete(self) -> Deferred[Digest]:
        """The body is all here: flush, fsync, close. Fires with the digest."""
        if self.state is SinkState.RECEIVING:
            self.state = SinkState.ENDING
            self._maybe_finish()
        if self._digest is not None:
            return succeed(self._digest)
        waiter: Deferred[Digest] = Deferred()
        if self._error is not None:
            waiter.errback(self._error)
        else:
            self._done.append(waiter)
        return waiter

    def settled(self) -> Deferred[None]:
        """Fires once the body is on disk whole, or once a failed body's
        leftovers are cut back and recorded (``on_aborted`` may return a
        Deferred)."""
        waiter: Deferred[None] = Deferred()
        if self.state is SinkState.DONE or self._cleaned:
            waiter.callback(None)
        else:
            self._settle_waiters.append(waiter)
        return waiter

    def _settle(self) -> None:
        waiters, self._settle_waiters = self._settle_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def abort(self) -> None:
        """The body will never be complete: stop and remove the staging file."""
        if self.state in (SinkState.DONE, SinkState.FAILED):
            return
        self._fail(Failure(errors.Invalid("the upload was interrupted")), reject=False)

    # -- internals -----------------------------------------------------------

    def _waiting(self) -> int:
        """Bytes received but not yet through every lane: what memory holds."""
        return self.received - min(lane.done for lane in self._lanes)

    def _kick(self, lane: _Lane) -> None:
        if lane.busy or not lane.queue:
            return
        batch, lane.queue = lane.queue, []
        lane.busy, lane.queued = lane.queued, 0
        self._run(lane.work, batch).addBoth(self._lane_done, lane)

    def _lane_done(self, result: object, lane: _Lane) -> None:
        size, lane.busy = lane.busy, 0
        if self.state is SinkState.FAILED:
            self._cleanup_when_idle()
            return
        if isinstance(result, Failure):
            self._batch_failed(result)
            return
        lane.done += size
        settled = min(other.done for other in self._lanes)
        if settled > self.written:
            self._on_progress(settled - self.written)
            self.written = settled
        if self._paused and self._waiting() < self._limits.low_water:
            self._paused = False
            if self.state is SinkState.RECEIVING:
                self._flow.resumeProducing()
        self._kick(lane)
        self._maybe_checkpoint()
        self._maybe_finish()

    def _maybe_checkpoint(self) -> None:
        """Past another ``every`` bytes on disk: fsync, then commit them."""
        checkpoints = self._checkpoints
        if (
            checkpoints is None
            or self._syncing
            or self.state is not SinkState.RECEIVING
        ):
            return
        # The write lane's bytes are in the file (os.write returned for them);
        # an fsync issued now makes at least those durable.
        on_disk = self._lanes[0].done
        if on_disk - self.checkpointed < checkpoints.every:
            return
        self._syncing = True

        def synced(_: object) -> Deferred[None]:
            def committed(_: object) -> None:
                self.checkpointed = on_disk

            return checkpoints.commit(on_disk).addCallback(committed)

        def ended(result: object) -> None:
            self._syncing = False
            if isinstance(result, Failure):
                log.failure("a checkpoint failed", result)
            if self.state is SinkState.FAILED:
                self._cleanup_when_idle()
                return
            self._maybe_checkpoint()
            self._maybe_finish()

        syncing = self._run(self._blob.sync)
        syncing.addCallbacks(synced, self._batch_failed)
        syncing.addBoth(ended)

    def _maybe_finish(self) -> None:
        idle = all(lane.idle for lane in self._lanes) and not self._syncing
        if self.state is SinkState.ENDING and not self._closing and idle:
            self._closing = True
            self._run(self._blob.close).addCallbacks(self._closed, self._batch_failed)

    def _batch_failed(self, failure: Failure) -> None:
        if self._closing:
            self._closed_file = True
        log.failure("writing an upload failed", failure)
        self._storage_failed = True
        self._fail(
            Failure(errors.StorageFull("the server could not store the upload")),
            reject=True,
        )

    def _closed(self, digest: Digest) -> None:
        self._closed_file = True
        if self.state is SinkState.FAILED:
            # Aborted while the file was being closed: clean up now.
            self._cleanup_when_idle()
            return
        self.state = SinkState.DONE
        self._digest = digest
        waiters, self._done = self._done, []
        for waiter in waiters:
            waiter.callback(digest)
        self._settle()

    def _fail(self, failure: Failure, reject: bool) -> None:
        if self.state in (SinkState.DONE, SinkState.FAILED):
            return
        self.state = SinkState.FAILED
        self._error = failure
        for lane in self._lanes:
            lane.queue, lane.queued = [], 0
        self._cleanup_when_idle()
        if reject:
            assert isinstance(failure.value, errors.UploaddError)
            self._on_reject(failure.value)
        waiters, self._done = self._done, []
        for waiter in waiters:
            waiter.errback(failure)

    def _cleanup_when_idle(self) -> None:
        """Discard the body once no thread is using the file."""
        if (self._closing and not self._closed_file) or self._syncing:
            return
        if all(lane.idle for lane in self._lanes) and not self._discarded:
            self._discarded = True
            keep = self.checkpointed if self._storage_failed else None
            cleaning = self._run(self._blob.discard, keep)
            cleaning.addCallback(self._on_aborted)
            cleaning.addErrback(
                lambda f: log.failure("discarding an upload body failed", f)
            )
            cleaning.addCallback(self._was_cleaned)

    def _was_cleaned(self, _: object) -> None:
        self._cleaned = True
        self._settle()
