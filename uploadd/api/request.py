"""StreamingRequest: the Site's request class, choosing a body's fate at its headers.

twisted.web buffers a whole body before any resource sees it. This subclass
asks the :class:`IngestGate` in ``gotLength`` (headers complete, body not yet
read) where the body should go. A refused request is answered at once with
``Connection: close``; the automatic ``100 Continue`` is suppressed, and the
little body that may already be in flight is drained and dropped (up to
``LINGER_BYTES`` or ``LINGER_SECONDS``) so the client can read the answer
before the connection closes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from noded.channel import ProblemRequest
from noded.drain import DETAIL, RETRY_AFTER, Drain, DrainedRequest, drained, hang_up
from noded.metrics import UNMATCHED, MeteredRequest
from uploadd.api import problems
from uploadd.api.cors import Cors
from uploadd.api.forward import ForwardedBody, Forwarder, Relayed
from uploadd.api.gate import IngestGate, Upload
from uploadd.api.problems import Problem
from uploadd.api.root import RouteMatch
from uploadd.errors import UploaddError
from uploadd.ingest.direct import SocketSource
from uploadd.ingest.sink import FlowControl, StreamedContent

log = Logger()

#: Most clients send a whole body before they read the answer (urllib,
#: fetch, an S3 SDK's part): one refused while up to this much is in flight
#: is drained, so the client reads the refusal instead of a reset. An S3
#: part is at least 5 MiB.
LINGER_BYTES = 16 * 1024 * 1024
LINGER_SECONDS = 2.0

#: Larger socket reads for bodies: fewer trips through the reactor and the
#: HTTP parser per gigabyte (Twisted reads 64 KiB by default).
UPLOAD_READ_SIZE = 256 * 1024


def pending_request_line(channel: Any) -> tuple[bytes, bytes, bytes]:
    """Method, target and version of the request whose head ``channel`` has
    just parsed, before its body.

    twisted.web gives these to the Request only in ``requestReceived``, after
    the whole body; until then they sit on the ``HTTPChannel`` as ``_command``,
    ``_path`` and ``_version``. This is the one place uploadd reads Twisted's
    private fields; a Twisted that renames them fails the gate's tests.
    """
    return (
        channel._command,
        channel._path,
        getattr(channel, "_version", b"HTTP/1.1"),
    )


class _Drain(StreamedContent):
    """Content of a refused request: counts and drops, hangs up when full."""

    def __init__(self, on_full: Callable[[], None]) -> None:
        self.received = 0
        self._on_full = on_full

    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > LINGER_BYTES:
            self._on_full()


def plain_problem(error: Problem | UploaddError, target: bytes = b"") -> Problem:
    """A refusal (of the request for ``target``) as the main API words it:
    problem+json."""
    return error if isinstance(error, Problem) else problems.problem_of(error)


class StreamingRequest(DrainedRequest, MeteredRequest, ProblemRequest):
    """A Request whose body goes where the gate says, as it arrives; counted
    by the route the gate matched."""

    #: How this site words a refusal made before its handler runs (the S3
    #: listener answers with S3's error documents).
    word = staticmethod(plain_problem)
    gate: IngestGate
    clock: IReactorTime
    cors: Cors
    upload: Upload | None = None
    route: RouteMatch | None = None
    processing = False
    _rejected = False
    _continue_held = False
    _linger: IDelayedCall | None = None
    _relayed: Relayed | Failure | None = None

    def hold_continue(self) -> None:
        """Do not answer ``Expect: 100-continue`` yet (the gate is still deciding)."""
        if self.requestHeaders.getRawHeaders(b"expect"):
            self.requestHeaders.removeHeader(b"expect")
            self._continue_held = True

    def release_continue(self) -> None:
        """The gate admitted the body: send the held ``100 Continue``."""
        channel: Any = self.channel
        if self._continue_held and channel is not None and channel.transport:
            self._continue_held = False
            if self._version() == b"HTTP/1.1":
                channel.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _version(self) -> bytes:
        """The request's HTTP version: on the channel until the body has
        all arrived (Twisted then clears it there), then the request's."""
        channel: Any = self.channel
        version: bytes = getattr(channel, "_version", None) or self.clientproto
        return version

    def inform(
        self, status: int, reason: str, headers: Sequence[tuple[str, str]]
    ) -> None:
        """Write an informational response on the transport: Twisted has
        no API for any but its own ``100 Continue``. Only before the final
        response starts, and only to an HTTP/1.1 client (HTTP/1.0 has none)."""
        channel: Any = self.channel
        if self.startedWriting or self.gone or channel is None:
            return
        if channel.transport is None:
            return
        if self._version() != b"HTTP/1.1":
            return
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason.encode("ascii"))]
        for name, value in headers:
            raw = value.encode("latin-1")
            if b"\r" in raw or b"\n" in raw:
                raise ValueError(f"header {name} carries a line break")
            lines.append(name.encode("ascii") + b": " + raw + b"\r\n")
        lines.append(b"\r\n")
        channel.transport.write(b"".join(lines))

    def cut(self) -> None:
        """End this request abruptly while its body streams: the client is
        gone as far as the upload is concerned (a newer request took over)."""
        if self.processing or self.gone or self.channel is None:
            return
        transport: Any = self.channel.transport
        if transport is not None:
            transport.abortConnection()

    def metered_route(self) -> str:
        route = self.route
        return route.rule if route is not None and route.rule else UNMATCHED

    @property
    def forwarder(self) -> Forwarder | None:
        """What sends on a request for an upload another instance holds."""
        return self.gate.forwarder

    @property
    def gone(self) -> bool:
        return bool(self.finished or self._disconnected)

    def body_flow(self) -> FlowControl | None:
        transport: Any = self.channel.transport if self.channel is not None else None
        if transport is not None:
            transport.bufferSize = UPLOAD_READ_SIZE
        return transport  # type: ignore[no-any-return]

    def body_source(self) -> SocketSource | None:
        """The socket this request's body may be read from directly."""
        return SocketSource.of(self.channel)

    def progressed(self) -> None:
        if self.channel is not None:
            self.channel.resetTimeout()

    def process(self) -> None:
        self.processing = True
        upload = self.upload
        if upload is not None and isinstance(upload.body, ForwardedBody):
            # The body went on to the instance holding the upload; its answer
            # (which may have come already) is this request's.
            upload.body.complete()
            self.cors.decorate(self)
            if self._relayed is not None:
                self._answer(self._relayed)
            return
        override = self.getHeader(b"x-http-method-override")
        if self.method == b"POST" and override:
            # Clients behind proxies that only pass GET and POST (tus).
            self.method = override.strip().upper()
        self.cors.decorate(self)
        if self.cors.preflight(self):
            self.setHeader(b"content-length", b"0")
            self.finish()
            return
        super().process()

    def gotLength(self, length: int | None) -> None:
        method, target, _ = pending_request_line(self.channel)
        override = self.requestHeaders.getRawHeaders(b"x-http-method-override")
        if method == b"POST" and override:
            method = override[0].strip().upper()
        if self.drain.draining:
            self.reject(shutting_down())
            return
        try:
            self.gate.admit(self, method, target, length)
        except (Problem, UploaddError) as refused:
            self.reject(refused)

    def shut_down(self) -> None:
        """The server stops: a body still arriving is cut where it is (what
        reached disk is kept) and answered 503; a running handler is hung up."""
        if self.processing:
            hang_up(self)
        else:
            self.reject(shutting_down())

    def settled(self) -> Deferred[None]:
        if self.upload is not None and self.upload.sink is not None:
            return self.upload.sink.settled()
        return succeed(None)

    def relay(self, outcome: Relayed | Failure) -> None:
        """The instance holding the upload answered (or could not be
        reached): answer so, now if the body has all arrived, else at once
        and stop taking the body."""
        if self.finished or self._disconnected:
            return
        if self.processing:
            self._answer(outcome)
        elif isinstance(outcome, Failure):
            self.reject(problems.from_failure(outcome, self))
        else:
            self._refuse(lambda: outcome.apply(self), f"{outcome.code} from the holder")
        self._relayed = outcome

    def _answer(self, outcome: Relayed | Failure) -> None:
        if self.finished or self._disconnected:
            return
        if isinstance(outcome, Failure):
            body = problems.apply(self, problems.from_failure(outcome, self))
        else:
            body = outcome.apply(self)
        self.write(body)
        self.finish()

    def reject(self, error: Problem | UploaddError) -> None:
        """Answer ``error`` now and stop taking this request's body."""
        # Before the body has all arrived, the target is still the channel's.
        pending = self.channel is not None and hasattr(self.channel, "_path")
        target = pending_request_line(self.channel)[1] if pending else self.uri
        problem = self.word(error, target)
        self._refuse(
            lambda: problems.apply(self, problem), f"{problem.status} {problem.detail}"
        )

    def _refuse(self, answer: Callable[[], bytes], summary: str) -> None:
        """Write ``answer()`` (status, headers, body) now, close the
        connection after it and drop what is left of the body."""
        if self._rejected or self.finished or self._disconnected or self.processing:
            # Once the handler runs, it answers (a failed body fails its await).
            return
        self._rejected = True
        channel: Any = self.channel
        if self.upload is not None and self.upload.body is not None:
            self.upload.body.abort()
        self.content = _Drain(self._hang_up)
        # A client that asked for 100 Continue and did not get it sends no
        # body: nothing to drain, close once the answer is written.
        received = self.upload.body.received if self.upload and self.upload.body else 0
        waiting = (
            bool(self.requestHeaders.getRawHeaders(b"expect")) or self._continue_held
        ) and not received
        if not self.startedWriting:
            self.method, self.uri, self.clientproto = pending_request_line(channel)
            self.requestHeaders.removeHeader(b"expect")
            self.cors.decorate(self)
            body = answer()
            self.setHeader(b"connection", b"close")
            self.write(body)
        channel.persistent = False
        if self.upload is not None:
            # The refusal is the upload's end: its slot is free now, not when
            # the lingering connection closes.
            self.gate.release(self.upload)
        log.info(
            "refused {method} {uri}: {summary}",
            method=self.method,
            uri=self.uri,
            summary=summary,
        )
        if waiting:
            self._hang_up()
            return
        if channel.transport is not None:
            channel.transport.resumeProducing()
        self._linger = self.clock.callLater(LINGER_SECONDS, self._hang_up)

    def _hang_up(self) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        transport = self.channel.transport if self.channel is not None else None
        if transport is not None:
            transport.loseConnection()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._rejected:
            self._hang_up()
            return
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: Failure) -> None:
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        if self.upload is not None and self.upload.body and not self.finished:
            self.upload.body.abort()
        super().connectionLost(reason)


def shutting_down() -> Problem:
    return Problem(503, DETAIL, headers={"Retry-After": RETRY_AFTER})


def request_factory(
    gate: IngestGate,
    clock: IReactorTime,
    cors: Cors,
    drain: Drain,
    word: Callable[[Problem | UploaddError, bytes], Problem] = plain_problem,
) -> type[StreamingRequest]:
    """A StreamingRequest class bound to ``gate``, for ``Site.requestFactory``;
    ``word`` says how its refusals are answered."""
    bound = drained(
        StreamingRequest,
        drain,
        gate=gate,
        clock=clock,
        cors=cors,
        word=staticmethod(word),
    )
    assert issubclass(bound, StreamingRequest)
    return bound
