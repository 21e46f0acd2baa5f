"""The upload sink: a request body streamed to disk with hashing and backpressure.

:class:`UploadSink` stands in for ``request.content`` on upload routes. The
reactor thread only queues the chunks it receives; a writer thread pool hashes
and writes them, one batch in flight per upload, sha256 and the write in one
lane and, where md5 or a per-body checksum is wanted, those in another so
they run alongside. When more than ``high_water`` bytes wait, reading from the
socket is paused; below ``low_water`` it resumes; across all sinks the
process's :class:`~uploadd.ingest.budget.MemoryBudget` pauses the largest
holders. Memory is bounded by ``high_water`` plus one socket read per body,
and by the budget overall, whatever the bodies' sizes.

A plain body over TCP with one lane is read by reader threads from its socket
once it streams (:mod:`uploadd.ingest.direct`): no queue, no copy per read.

A body that adds to a resumable upload may checkpoint: every so many bytes
on disk the file is fsynced and the owner commits the new offset, so a body
cut by a crash keeps what reached disk. A body that fails because the disk
did (full, broken) is cut back to its last checkpoint, returning the space.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from noded.threads import Runner
from uploadd import errors
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.ingest.budget import MemoryBudget
from uploadd.ingest.direct import (
    BATCH,
    TAIL,
    THRESHOLD,
    Moved,
    SocketSource,
    Stop,
    move,
)

log = Logger()


class FlowControl(Protocol):
    """The read side of a transport: what backpressure acts on."""

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...


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
    _budget: MemoryBudget | None = None
    #: Runs the thread jobs reading the socket (None: ``run``).
    _read: Runner | None = None
    #: The socket the body may be read from directly.
    _source: SocketSource | None = attrs.field(default=None, init=False)

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
    #: Paused by the process's memory budget.
    _squeezed: bool = False
    #: The writer threads read the socket (``_moving``: a job runs).
    _direct: bool = False
    _moving: bool = False
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
        self._held()
        if self._source is not None and not self._direct:
            self._go_direct(self._source)

    def read_directly(self, source: SocketSource) -> None:
        """Read the rest of the body from ``source`` on the writer threads
        once it streams (from the next chunk the channel hands over, so that
        no byte the channel holds is left behind)."""
        self._source = source

    @property
    def paused(self) -> bool:
        """Reading is paused until the writes catch up (or the budget allows)."""
        return self._paused

    def squeeze(self) -> None:
        """The memory budget is spent: stop reading until it is not."""
        self._squeezed = True
        self._pace()

    def relieve(self) -> None:
        self._squeezed = False
        self._pace()

    def _held(self) -> None:
        """Tell the budget what this body holds now, and pace reading."""
        live = self.state in (SinkState.RECEIVING, SinkState.ENDING)
        if self._budget is not None:
            self._budget.update(self, self._waiting() if live else 0)
        self._pace()

    def _pace(self) -> None:
        if self.state is not SinkState.RECEIVING:
            return
        waiting = self._waiting()
        if not self._paused:
            if self._squeezed or waiting > self._limits.high_water:
                self._paused = True
                self._flow.pauseProducing()
        elif not self._squeezed and waiting < self._limits.low_water:
            self._paused = False
            self._flow.resumeProducing()

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

    def _idle(self) -> bool:
        return all(lane.idle for lane in self._lanes) and not self._moving

    # -- direct reads ----------------------------------------------------------

    def _go_direct(self, source: SocketSource) -> None:
        """Read the rest of the body on the writer threads, if worth it."""
        self._source = None
        if len(self._lanes) > 1 or source.remaining() < THRESHOLD:
            return
        limit = self._limits.max_size
        if limit is not None and self.received + source.remaining() > limit:
            # The body will pass its limit: a thread job would write bytes
            # past it (into another span, past the upload's length) before
            # the reactor hears of them. The channel's chunks stop at it.
            return
        try:
            source.take(self._move)
        except OSError as error:
            log.warn("reading a body through the channel: {error}", error=error)
            return
        self._source, self._direct = source, True
        self._move()

    def _move(self) -> None:
        """Start a thread job reading the socket, once the queue is written."""
        source = self._source
        if source is None or self._moving:
            return
        lane = self._lanes[0]
        if self.state is not SinkState.RECEIVING:
            self._end_direct()
            return
        if not lane.idle:
            return  # _lane_done moves on once the bytes before are written
        budget = min(BATCH, source.remaining() - TAIL)
        fd = source.descriptor() if budget > 0 else None
        if fd is None:
            self._end_direct()
            return
        self._moving = True
        stopping = self._stopping
        moving = (self._read or self._run)(move, self._blob, fd, budget, stopping)
        moving.addBoth(self._moved, source)

    def _stopping(self) -> bool:
        return self.state is not SinkState.RECEIVING

    def _moved(self, result: Moved | Failure, source: SocketSource) -> None:
        self._moving = False
        if isinstance(result, Failure):
            self._end_direct()
            if self.state is SinkState.FAILED:
                # Ended meanwhile: it waited for this job to clean up.
                log.failure("reading a body directly failed", result)
                self._cleanup_when_idle()
            else:
                self._batch_failed(result)
            return
        source.consumed(result.count)
        self.received += result.count
        self._lanes[0].done += result.count
        if self.state is SinkState.FAILED:
            self._end_direct()
            self._cleanup_when_idle()
            return
        if result.error is not None:
            self._end_direct()
            self._batch_failed(Failure(result.error))
            return
        limit = self._limits.max_size
        if limit is not None and self.received > limit:
            self._end_direct()
            self._fail(Failure(errors.TooLarge(limit)), reject=True)
            return
        if result.count:
            self._on_progress(result.count)
            self.written += result.count
        self._maybe_checkpoint()
        if result.stop is Stop.AGAIN:
            source.arm()
        elif result.stop is Stop.BATCH:
            self._move()
        else:
            self._end_direct()

    def _end_direct(self) -> None:
        """The channel reads the socket again (the body's end, or a failure)."""
        source, self._source = self._source, None
        if source is not None and not self._moving:
            self._direct = False
            source.give_back()
        elif source is not None:
            self._source = source  # given back when the job in flight ends

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
        self._held()
        self._kick(lane)
        if self._direct:
            self._move()
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
        idle = self._idle() and not self._syncing
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
        self._held()
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
        self._end_direct()
        self._held()
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
        if self._idle() and not self._discarded:
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
