"""Direct reads: the middle of a plain body read from its socket on a thread.

For a body with a ``Content-Length`` over plain TCP whose only work is sha256
and the write, the reactor thread's share of the usual path (a fresh bytes
object per socket read, the HTTP parser, a queue, a thread hand-off per batch)
costs more CPU than hashing and writing themselves. So once such a body
streams, its sink takes the socket over: a writer thread reads into a buffer
it keeps, hashes and writes, until the socket has nothing more for now (the
reactor then waits for it to be readable again), or it moved its batch (the
reactor records progress, checkpoints, and goes on). Memory is one buffer per
writer thread, whatever the number of connections.

The HTTP channel is told how many body bytes it did not see; the last
:data:`TAIL` bytes of the body go through the channel as usual, so the
request ends the way any other does. The threads read from a duplicate of
the socket's descriptor, made when the sink takes the socket over and closed
when it gives it back, so a connection closed meanwhile (a timeout, a newer
request cutting it) cannot hand its number to another file.
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import tcp
from twisted.web.http import _IdentityTransferDecoder

from uploadd.ingest.blob import BlobFile

#: Bytes read per system call, into a buffer each writer thread keeps: few
#: calls, so few hand-overs of the GIL the reactor thread waits on.
READ_SIZE = 1024 * 1024
#: The end of a body is left to the HTTP channel (it ends the request).
TAIL = 64 * 1024
#: Bodies with less than this left are not worth taking over.
THRESHOLD = 4 * TAIL
#: Bytes one thread job moves before the reactor hears of them.
BATCH = 8 * 1024 * 1024

_buffers = threading.local()


class Stop(enum.Enum):
    #: The socket had nothing more for now.
    AGAIN = "again"
    #: The job moved all it was asked to.
    BATCH = "batch"
    #: The peer closed or the connection failed: the channel will find out.
    CLOSED = "closed"
    #: The sink asked the job to stop.
    ASKED = "asked"


@attrs.frozen
class Moved:
    """What one thread job did: ``count`` bytes read from the socket (all
    of them hashed and written unless ``error``), and why it stopped."""

    count: int
    stop: Stop
    error: OSError | None = None


def move(blob: BlobFile, fd: int, budget: int, stopping: Callable[[], bool]) -> Moved:
    """Thread side: read up to ``budget`` bytes from the socket ``fd`` (the
    source's duplicate) into ``blob``."""
    buffer = getattr(_buffers, "view", None)
    if buffer is None:
        buffer = _buffers.view = memoryview(bytearray(READ_SIZE))
    count = 0
    while count < budget:
        if stopping():
            return Moved(count, Stop.ASKED)
        try:
            got = os.readv(fd, [buffer[: min(READ_SIZE, budget - count)]])
        except BlockingIOError:
            return Moved(count, Stop.AGAIN)
        except OSError:
            return Moved(count, Stop.CLOSED)
        if not got:
            return Moved(count, Stop.CLOSED)
        count += got
        try:
            blob.take(buffer[:got])
        except OSError as failed:
            return Moved(count, Stop.ASKED, failed)
    return Moved(count, Stop.BATCH)


@attrs.define(eq=False)
class SocketSource:
    """The reactor side: a TCP transport and the channel's count of body
    bytes still to come, whose reading a sink takes over and gives back."""

    _transport: Any
    _decoder: Any
    _readable: Callable[[], None] | None = None
    #: The socket's descriptor duplicated for the threads (-1: none).
    _fd: int = -1
    #: Someone else (the channel, a refusal) paused reading meanwhile.
    _paused: bool = False
    #: Reading wanted: waiting for the socket to be readable.
    _armed: bool = False

    @classmethod
    def of(cls, channel: Any) -> SocketSource | None:
        """The source of ``channel``'s body, if it can be read directly:
        plain TCP (not TLS) and a body of known length."""
        transport = getattr(channel, "transport", None)
        decoder = getattr(channel, "_transferDecoder", None)
        if not isinstance(transport, tcp.Connection) or not isinstance(
            decoder, _IdentityTransferDecoder
        ):
            return None
        if decoder.contentLength is None:
            return None
        return cls(transport, decoder)

    def remaining(self) -> int:
        """Body bytes the channel still expects."""
        left: int | None = self._decoder.contentLength
        return left or 0

    def take(self, readable: Callable[[], None]) -> None:
        """Stop the channel reading; call ``readable`` when the socket is
        (after :meth:`arm`). OSError (no descriptor to spare): nothing
        changed, the channel reads on."""
        transport = self._transport
        self._fd = os.dup(transport.fileno())
        self._readable = readable
        transport.stopReading()
        transport.doRead = self._ready
        transport.pauseProducing = self._pause
        transport.resumeProducing = self._resume

    def arm(self) -> None:
        """Wait for the socket to be readable."""
        self._armed = True
        if not self._paused and self.open:
            self._transport.startReading()

    def consumed(self, count: int) -> None:
        """``count`` body bytes went past the channel."""
        self._decoder.contentLength -= count

    def descriptor(self) -> int | None:
        """The socket's descriptor for a thread job (None once the
        connection is closing)."""
        if not self.open or self._fd < 0:
            return None
        return self._fd

    @property
    def open(self) -> bool:
        """Connected, and neither closing nor aborted (an abort closes the
        socket only on the reactor's next turn)."""
        transport = self._transport
        aborted = getattr(transport, "_aborting", False)
        return bool(transport.connected and not transport.disconnecting and not aborted)

    def give_back(self) -> None:
        """The channel reads again (unless paused meanwhile). No thread job
        may be running: the duplicate descriptor closes."""
        transport = self._transport
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for name, ours in (
            ("doRead", self._ready),
            ("pauseProducing", self._pause),
            ("resumeProducing", self._resume),
        ):
            # Twisted's abortConnection sets its own doRead: leave that.
            if transport.__dict__.get(name) == ours:
                del transport.__dict__[name]
        self._readable = None
        if not self._paused and self.open:
            transport.startReading()

    def _ready(self) -> None:
        self._transport.stopReading()
        self._armed = False
        if self._readable is not None:
            self._readable()

    def _pause(self) -> None:
        self._paused = True
        self._transport.stopReading()

    def _resume(self) -> None:
        self._paused = False
        if self._armed and self.open:
            self._transport.startReading()
