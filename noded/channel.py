"""The HTTP/1.1 connection both daemons serve: deadlines for slow clients and
problem+json answers to requests that fail before any resource sees them.

twisted.web's ``HTTPChannel`` restarts one idle timer on every read, so a
client sending a header byte every few seconds holds a connection for ever,
and it answers framing errors with a bare ``400 Bad Request`` (or, for an
over-long line or an absurd chunk size, not at all). :class:`GuardedChannel`
keeps Twisted's parser and changes what surrounds it:

- the request head (request line and header fields) must arrive within
  ``header_timeout`` of its first byte, for every request on a connection;
- while a request body arrives, only body bytes (or the upload sink reaching
  disk, which calls ``resetTimeout``) restart the idle timer, so a body whose
  framing dribbles without data is dropped after ``idle_timeout``; a read
  paused for backpressure is the server's doing and is not timed here;
- a response the client stops reading (the transport pauses the channel and
  never resumes it) is dropped after ``idle_timeout``;
- a malformed request gets a problem+json answer: 400 for framing errors,
  414/431 for an over-long request line or head, 408 when a head or body
  times out; then the connection lingers briefly so the client can read it.

:class:`ProblemRequest` makes a resource's own failures problem+json too (for
sites without Klein's error handling, such as noded's downloads).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.protocols import basic
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import (
    _ChunkedTransferDecoder,
    _IdentityTransferDecoder,
    _MalformedChunkedDataError,
)
from twisted.web.server import Request, Site

from noded import problems
from noded.metrics import UNMATCHED, HttpMetrics, MeteredRequest, site_metrics
from noded.problems import Problem

log = Logger()

#: After a refusal, read and drop at most this much more of the request (or
#: for this long) before closing, so the client is reading when it closes.
LINGER_BYTES = 1024 * 1024
LINGER_SECONDS = 2.0

#: Lengths are read as 64-bit numbers at most (RFC 9112 7.1 asks recipients
#: to guard against overflowing their integers): a Content-Length of more
#: decimal digits, or a chunk size of more hexadecimal digits, is refused.
MAX_LENGTH_DIGITS = 19
MAX_CHUNK_SIZE_DIGITS = 16

#: Fields that the protocols spoken here (HTTP, tus 1.0) define as single
#: values: a request that repeats one is ambiguous, so it is refused.
SINGLE_VALUED = frozenset(
    {
        b"host",
        b"authorization",
        b"content-type",
        b"content-range",
        b"range",
        b"if-range",
        b"origin",
        b"x-http-method-override",
        b"x-progress-id",
        b"tus-resumable",
        b"upload-offset",
        b"upload-length",
        b"upload-defer-length",
        b"upload-metadata",
        b"upload-checksum",
        b"upload-concat",
    }
)

# uri-host [":" port] (RFC 9110 7.2): an IP literal, or a reg-name.
_HOST = re.compile(rb"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(:[0-9]*)?$")
_DIGITS = re.compile(rb"^[0-9]+$")


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


class _BoundedChunks(_ChunkedTransferDecoder):
    """Twisted's chunked decoder, refusing chunk sizes no body could have and
    remembering why it refused."""

    error = ""

    def _dataReceived_CHUNK_LENGTH(self) -> bool:
        end = self._buffer.find(b"\r\n")
        digits = bytes(self._buffer[: end if end >= 0 else len(self._buffer)])
        digits = digits.split(b";", 1)[0].strip().lstrip(b"0")
        if len(digits) > MAX_CHUNK_SIZE_DIGITS:
            raise _MalformedChunkedDataError(
                f"a chunk size has more than {MAX_CHUNK_SIZE_DIGITS} hexadecimal digits"
            )
        return bool(super()._dataReceived_CHUNK_LENGTH())

    def dataReceived(self, data: bytes) -> None:
        try:
            super().dataReceived(data)
        except _MalformedChunkedDataError as error:
            self.error = str(error)
            raise


class GuardedChannel(http.HTTPChannel):
    """An HTTPChannel with a header deadline, body and response stall timers,
    and problem+json refusals (see the module docstring)."""

    clock: IReactorTime
    idle_timeout: float | None = None
    header_timeout: float | None = None
    single_valued: frozenset[bytes] = SINGLE_VALUED

    _in_head = False
    _head_lines = 0
    _refused = False
    _dropped = 0
    _linger: IDelayedCall | None = None
    _stall: IDelayedCall | None = None
    _why = ""
    _guarded: object = None

    # -- timing ----------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            self._drop(data)
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
        self._head_lines = 0
        if self.header_timeout:
            self.setTimeout(self.header_timeout)

    def setTimeout(self, period: float | None) -> float | None:
        """As TimeoutMixin's, but a deadline brought forward is cancelled and
        scheduled anew: Twisted moves a timed call sooner by a linear search
        of the reactor's heap of them, which with hundreds of connections
        cost more than the rest of a request's head."""
        previous: float | None = self.timeOut
        if period is not None:
            super().setTimeout(None)
        super().setTimeout(period)
        return previous

    def allHeadersReceived(self) -> None:
        self._in_head = False
        request = self.requests[-1] if self.requests else None
        if isinstance(request, MeteredRequest):
            request.head_read(getattr(self, "_command", None))
        # The body phase: idle_timeout, restarted by body bytes only.
        self.setTimeout(self.idle_timeout)
        problem = self._check_head()
        if problem is not None:
            self.refuse(problem)
            return
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
        if (self._in_head or in_body) and not self._refused and transport:
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
                self._answered(408)
        self._refused = True
        super().timeoutConnection()

    # -- framing ---------------------------------------------------------------

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        # A pipelined request's head can begin without a read of its own.
        self._head_started()
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self.refuse(
                Problem(
                    431,
                    f"the request head is larger than {self.totalHeadersSize} bytes",
                )
            )
            return
        self._head_lines += 1
        if self._head_lines == 1:
            self._why = "the request line is not METHOD TARGET HTTP/1.x"
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._refused:
            return
        if self._head_lines == 0:
            self.refuse(
                Problem(414, f"the request line is longer than {self.MAX_LENGTH} bytes")
            )
        else:
            self.refuse(
                Problem(431, f"a header line is longer than {self.MAX_LENGTH} bytes")
            )

    def headerReceived(self, line: bytes) -> bool:
        if self._refused:
            return False
        if self._receivedHeaderCount >= self.maxHeaders:
            self.refuse(
                Problem(
                    431, f"the request has more than {self.maxHeaders} header lines"
                )
            )
            return False
        name, _, value = line.partition(b":")
        name = name.lower()
        value = value.strip(b" \t")
        huge = len(value.lstrip(b"0")) > MAX_LENGTH_DIGITS
        if name == b"content-length" and _DIGITS.match(value) and huge:
            self.refuse(Problem(413, "the Content-Length is beyond any body taken"))
            return False
        self._why = {
            b"content-length": "Content-Length must be one decimal number, and "
            "not be sent with Transfer-Encoding",
            b"transfer-encoding": "Transfer-Encoding must be 'chunked', once, "
            "without Content-Length",
        }.get(name, "a header line is not 'name: value' without control characters")
        return bool(super().headerReceived(line))

    def _maybeChooseTransferDecoder(self, header: bytes, data: bytes) -> bool:
        chosen = bool(super()._maybeChooseTransferDecoder(header, data))
        decoder: Any = self._transferDecoder
        if not chosen or decoder is None or decoder is self._guarded:
            return chosen
        if isinstance(decoder, _ChunkedTransferDecoder):
            decoder = _BoundedChunks(
                self._body_progress(decoder.dataCallback), decoder.finishCallback
            )
        elif isinstance(decoder, _IdentityTransferDecoder):
            decoder.dataCallback = self._body_progress(decoder.dataCallback)
        self._transferDecoder = self._guarded = decoder
        return chosen

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            self._drop(data)
            return
        super().rawDataReceived(data)

    def allContentReceived(self) -> None:
        if self._refused:
            return
        super().allContentReceived()

    def _check_head(self) -> Problem | None:
        """What is wrong with a complete head that Twisted accepts, if anything."""
        request = self.requests[-1]
        headers = request.requestHeaders
        hosts = headers.getRawHeaders(b"host") or []
        if self._version == b"HTTP/1.1" and not hosts:
            return problems.bad_request("an HTTP/1.1 request needs a Host header")
        if hosts and not _HOST.match(hosts[0]):
            return problems.bad_request("the Host header is not host[:port]")
        for name in self.single_valued:
            values = headers.getRawHeaders(name) or []
            if len(values) > 1:
                field = name.decode("ascii").title()
                return problems.bad_request(
                    f"the {field} header is sent more than once"
                )
        return None

    # -- refusing ----------------------------------------------------------------

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's parser calls this for every framing error it finds; the
        # cause was noted in self._why (or by the chunk decoder) beforehand.
        decoder = self._transferDecoder
        why = self._why
        if isinstance(decoder, _BoundedChunks) and decoder.error:
            why = f"the chunked body is malformed: {decoder.error}"
        self.refuse(problems.bad_request(why or "the request is not valid HTTP"))

    def refuse(self, problem: Problem) -> None:
        """Answer ``problem`` (unless a response already started), read no more
        requests, and close once the client has had a moment to read it."""
        if self._refused:
            return
        self._refused = True
        self._in_head = False
        self.setTimeout(None)
        self.persistent = False
        transport: Any = self.transport
        if transport is None:
            return
        log.info(
            "refused a request from {peer}: {status} {detail}",
            peer=str(transport.getPeer()),
            status=problem.status,
            detail=problem.detail,
        )
        if not self._response_started():
            transport.write(response_bytes(problem, self.clock))
            self._answered(problem.status)
        # Keep reading (and dropping) for a moment: closing with unread bytes
        # would reset the connection before the client reads the answer.
        transport.resumeProducing()
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()
        self._linger = self.clock.callLater(LINGER_SECONDS, self._hang_up)

    def _answered(self, status: int) -> None:
        """The channel wrote ``status`` itself: the request it answered for
        is counted with it (a request line too long to read made none, and
        is counted here)."""
        method = getattr(self, "_command", None)
        pending = self.requests[-1] if self.requests else None
        if isinstance(pending, MeteredRequest):
            pending.refused(status, method)
            return
        meter = site_metrics(self)
        if meter is not None:
            meter.count(method, UNMATCHED, status, 0.0)

    def _response_started(self) -> bool:
        return any(getattr(r, "startedWriting", False) for r in self.requests)

    def _drop(self, data: bytes) -> None:
        self._dropped += len(data)
        if self._dropped > LINGER_BYTES:
            self._hang_up()

    def _hang_up(self) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        if self.transport is not None:
            self.loseConnection()

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self._cancel_stall()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        super().connectionLost(reason)


class GuardedSite(Site):
    """A Site speaking through :class:`GuardedChannel`.

    ``timeout`` is the idle timeout; ``header_timeout`` bounds each request
    head; ``http_metrics`` counts its requests (a :class:`MeteredRequest`
    factory counts itself). HTTP/2 is not offered (there is no TLS to
    negotiate it), so the channel is the protocol itself rather than
    Twisted's HTTP/1-or-2 wrapper.
    """

    protocol = GuardedChannel  # type: ignore[assignment]

    http_metrics: HttpMetrics | None = None

    def __init__(
        self,
        resource: Any,
        *,
        header_timeout: float | None,
        http_metrics: HttpMetrics | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(resource, **kwargs)
        self.header_timeout = header_timeout
        self.http_metrics = http_metrics

    def buildProtocol(self, addr: Any) -> Any:
        channel: GuardedChannel = super().buildProtocol(addr)
        channel.clock = self.reactor
        channel.idle_timeout = self.timeOut
        channel.header_timeout = self.header_timeout
        return channel


class ProblemRequest(Request):
    """A Request whose resource failures are answered as problem+json."""

    def processingFailed(self, reason: Failure) -> Failure:
        problem = problems.unexpected(reason)  # logs it with an incident id
        if self.startedWriting:
            # Too late for a status: end the connection so the client sees a
            # truncated response rather than a complete-looking one.
            if self.channel is not None and self.channel.transport is not None:
                self.channel.transport.loseConnection()
            return reason
        self.write(problems.apply(self, problem))
        self.finish()
        return reason
