"""Graceful stop of an HTTP server: the requests in flight, and letting them end.

Both daemons use it (uploadd's uploads, noded's downloads). A :class:`Drain`
knows every request its Site has begun. When the daemon stops, the listener
closes first; then :meth:`Drain.drain` refuses new requests on open
connections (503, ``Connection: close``), ends endless responses (event
streams, whose clients reconnect), and waits up to the grace for the rest.
Whatever still runs then is told so: a request that can still be answered
gets 503 with ``Retry-After`` (an upload body keeps what reached disk, see
``shut_down``), any other has its connection closed. Last, it waits (briefly)
for interrupted bodies to be recorded, so nothing is lost when the store
closes behind it.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.server import Request

log = Logger()

#: How long the stop waits, after the grace, for interrupted bodies to be
#: recorded.
SETTLE_SECONDS = 10.0
RETRY_AFTER = "5"
DETAIL = "the server is shutting down; retry shortly"


def problem_body() -> bytes:
    """The RFC 9457 document of a refusal during shutdown."""
    return json.dumps(
        {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": DETAIL,
        }
    ).encode("utf-8")


class Stoppable(Protocol):
    """What a request may offer the drain beyond twisted.web's Request."""

    def shut_down(self) -> None:
        """The grace ran out: answer 503 if still possible, else hang up."""

    def settled(self) -> Deferred[None]:
        """Fires once whatever the request leaves behind is recorded."""


@attrs.define
class Drain:
    _clock: IReactorTime
    draining: bool = False
    _requests: set[Request] = attrs.field(factory=set)
    _endless: set[Request] = attrs.field(factory=set)

    def track(self, request: Request) -> None:
        self._requests.add(request)
        request.notifyFinish().addBoth(lambda _: self._forget(request))

    def endless(self, request: Request) -> None:
        """``request`` streams until its client leaves: end it at shutdown."""
        self._endless.add(request)

    def _forget(self, request: Request) -> None:
        self._requests.discard(request)
        self._endless.discard(request)

    def in_flight(self) -> list[Request]:
        """Requests still running on a connection of their own (a request
        whose connection was taken over, by a WebSocket, is not counted)."""
        return [
            request
            for request in self._requests
            if not request.finished
            and not request._disconnected
            and request.channel is not None
            and request.channel.transport is not None
        ]

    async def drain(self, grace: float) -> int:
        """Let requests finish for up to ``grace`` seconds; stop the rest.
        Returns how many had to be stopped."""
        self.draining = True
        for request in list(self._endless):
            hang_up(request)
        deadline = self._clock.seconds() + grace
        while self.in_flight() and self._clock.seconds() < deadline:
            await deferLater(self._clock, 0.05)
        left = self.in_flight()
        if left:
            log.warn(
                "{count} requests still running after {grace} s; stopping them",
                count=len(left),
                grace=grace,
            )
        settling = []
        for request in left:
            stoppable: Any = request
            if hasattr(stoppable, "shut_down"):
                stoppable.shut_down()
                settling.append(stoppable.settled())
            else:
                refuse(request)
        deadline = self._clock.seconds() + SETTLE_SECONDS
        while not all(d.called for d in settling) and self._clock.seconds() < deadline:
            await deferLater(self._clock, 0.05)
        return len(left)


def refuse(request: Request) -> None:
    """503 and close, when nothing of the answer was written yet; else hang up."""
    if request.channel is not None:
        request.channel.persistent = False
    if not request.startedWriting and not request.finished:
        body = problem_body()
        request.setResponseCode(503)
        request.setHeader(b"content-type", b"application/problem+json")
        request.setHeader(b"retry-after", RETRY_AFTER.encode())
        request.setHeader(b"connection", b"close")
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()
        return
    hang_up(request)


def hang_up(request: Request) -> None:
    channel = request.channel
    if channel is not None and channel.transport is not None:
        channel.transport.loseConnection()


class DrainedRequest(Request):
    """A Request its Site's :class:`Drain` knows of; refused when it began
    after the drain did (on a connection kept open)."""

    drain: Drain

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.late = self.drain.draining
        self.drain.track(self)

    def process(self) -> None:
        if self.late:
            self.setHeader(b"connection", b"close")
            refuse(self)
            return
        super().process()


def exit_cleanly(reactor: IReactorCore) -> None:
    """After a drained stop, let twistd exit 0: it otherwise re-raises the
    stop signal on itself once the reactor ends (the reactor records it as
    ``_exitSignal``, see ``_ISupportsExitSignalCapturing``)."""
    capturing: Any = reactor
    if getattr(capturing, "_exitSignal", None) is not None:
        capturing._exitSignal = None


def endless(request: Any) -> None:
    """Mark ``request`` as a stream without end (SSE): shutdown ends it at once
    rather than waiting out its grace."""
    drain = getattr(request, "drain", None)
    if isinstance(drain, Drain):
        drain.endless(request)


def drained(base: type[Request], drain: Drain, **bound: Any) -> type[Request]:
    """``base`` (a DrainedRequest) bound to ``drain``, for ``Site.requestFactory``."""
    return type(f"Drained{base.__name__}", (base,), {"drain": drain, **bound})
