"""The HTTP/1.1 connection both daemons serve: deadlines for slow clients.

twisted.web's ``HTTPChannel`` restarts one idle timer on every read, so a
client sending a header byte every few seconds holds a connection for ever.
:class:`GuardedChannel` keeps Twisted's parser and changes what surrounds it:

- the request head (request line and header fields) must arrive within
  ``header_timeout`` of its first byte, for every request on a connection;
- while a request body arrives, only body bytes (or the upload sink reaching
  disk, which calls ``resetTimeout``) restart the idle timer, so a body whose
  framing dribbles without data is dropped after ``idle_timeout``; a read
  paused for backpressure is the server's doing and is not timed here;
- a response the client stops reading (the transport pauses the channel and
  never resumes it) is dropped after ``idle_timeout``;
- a head or body that times out is answered 408 (problem+json) if no response
  started, then closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.protocols import basic
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import _ChunkedTransferDecoder, _IdentityTransferDecoder
from twisted.web.server import Site

from uploadd.api import problems
from uploadd.api.problems import Problem

log = Logger()


def response_bytes(problem: Problem, clock: IReactorTime) -> bytes:
    """A whole ``Connection: close`` response for ``problem``."""
    body = problem.body()
    title = str(problem.document()["title"])
    reason = http.RESPONSES.get(problem.status) or title.encode("ascii", "replace")
    lines = [
        b"HTTP/1.1 %d %s" % (problem.status, reason),
        b"Date: " + http.datetimeToString(int(clock.seconds())),
        b"Content-Type: " + problems.PROBLEM_TYPE.encode("ascii"),
        b"Content-Length: %d" % len(body),
        b"Connection: close",
        *(
            name.encode("ascii") + b": " + value.encode("latin-1")
            for name, value in problem.headers.items()
        ),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class GuardedChannel(http.HTTPChannel):
    """An HTTPChannel with a header deadline and body and response stall
    timers (see the module docstring)."""

    clock: IReactorTime
    idle_timeout: float | None = None
    header_timeout: float | None = None

    _in_head = False
    _timed_out = False
    _stall: IDelayedCall | None = None
    _guarded: object = None

    # -- timing ----------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._timed_out:
            return
        if data and self.line_mode and not self._handlingRequest:
            self._head_started()
        if not self.header_timeout and self._in_head:
            # Without a header deadline, every read restarts the idle timer.
            self.resetTimeout()
        basic.LineReceiver.dataReceived(self, data)

    def _head_started(self) -> None:
        """The first byte of a request: from now the whole head is due within
        ``header_timeout`` (reads do not extend it)."""
        if self._in_head:
            return
        self._in_head = True
        if self.header_timeout:
            self.setTimeout(self.header_timeout)

    def allHeadersReceived(self) -> None:
        self._in_head = False
        # The body phase: idle_timeout, restarted by body bytes only.
        self.setTimeout(self.idle_timeout)
        super().allHeadersReceived()

    def _body_progress(
        self, deliver: Callable[[bytes], None]
    ) -> Callable[[bytes], None]:
        def delivered(data: bytes) -> None:
            if data:
                self.resetTimeout()
            deliver(data)

        return delivered

    def pauseProducing(self) -> None:
        super().pauseProducing()
        # The client stopped reading the response: it has idle_timeout to
        # start again (the idle timer is off while a request is handled).
        if self._handlingRequest and self.idle_timeout and self._stall is None:
            self._stall = self.clock.callLater(self.idle_timeout, self._stalled)

    def resumeProducing(self) -> None:
        super().resumeProducing()
        self._cancel_stall()

    def _cancel_stall(self) -> None:
        if self._stall is not None and self._stall.active():
            self._stall.cancel()
        self._stall = None

    def _stalled(self) -> None:
        self._stall = None
        log.info(
            "dropping {peer}: the response was not read for {seconds} s",
            peer=str(self.transport.getPeer()) if self.transport else "?",
            seconds=self.idle_timeout,
        )
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def timeoutConnection(self) -> None:
        in_body = not self.line_mode and not self._handlingRequest
        transport: Any = self.transport
        if (self._in_head or in_body) and transport:
            what = "request head" if self._in_head else "request body"
            seconds = self.header_timeout if self._in_head else self.idle_timeout
            log.info(
                "timing out {peer}: the {what} did not arrive within {seconds} s",
                peer=str(transport.getPeer()),
                what=what,
                seconds=seconds,
            )
            if not self._response_started():
                transport.write(
                    response_bytes(
                        Problem(
                            408,
                            f"the {what} did not arrive within {seconds:g} seconds",
                        ),
                        self.clock,
                    )
                )
        self._timed_out = True
        super().timeoutConnection()

    # -- parsing ---------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        # A pipelined request's head can begin without a read of its own.
        self._head_started()
        super().lineReceived(line)

    def _maybeChooseTransferDecoder(self, header: bytes, data: bytes) -> bool:
        chosen = bool(super()._maybeChooseTransferDecoder(header, data))
        decoder: Any = self._transferDecoder
        if not chosen or decoder is None or decoder is self._guarded:
            return chosen
        if isinstance(decoder, (_ChunkedTransferDecoder, _IdentityTransferDecoder)):
            decoder.dataCallback = self._body_progress(decoder.dataCallback)
        self._guarded = decoder
        return chosen

    def _response_started(self) -> bool:
        return any(getattr(r, "startedWriting", False) for r in self.requests)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._cancel_stall()
        super().connectionLost(reason)


class GuardedSite(Site):
    """A Site speaking through :class:`GuardedChannel`.

    ``timeout`` is the idle timeout; ``header_timeout`` bounds each request
    head. HTTP/2 is not offered (there is no TLS to negotiate it), so the
    channel is the protocol itself rather than Twisted's HTTP/1-or-2 wrapper.
    """

    protocol = GuardedChannel  # type: ignore[assignment]

    def __init__(
        self, resource: Any, *, header_timeout: float | None, **kwargs: Any
    ) -> None:
        super().__init__(resource, **kwargs)
        self.header_timeout = header_timeout

    def buildProtocol(self, addr: Any) -> Any:
        channel: GuardedChannel = super().buildProtocol(addr)
        channel.clock = self.reactor
        channel.idle_timeout = self.timeOut
        channel.header_timeout = self.header_timeout
        return channel
