"""The pieces both daemons' service trees are made of.

A daemon is an :class:`InOrder` tree: its children start one after another,
each once the one before it is ready, and stop in the reverse order, each
once the one after it has stopped. So the order of the children *is* the
start order, and its reverse the stop order. A child is a :class:`Step`
(two callables, such as migrating and closing the store), a
:class:`Listener` (a ``StreamServerEndpointService`` on an endpoint string),
a ``TimerService``, or any other service.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable

import attrs
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorCore,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from noded.reactor import IReactor

log = Logger()

#: What a Step runs: a plain callable, or one returning an awaitable.
Action = Callable[[], Awaitable[object] | object]


class BadEndpoint(ValueError):
    """An endpoint string Twisted cannot listen on (its message says why)."""


async def _run(action: Action | None) -> None:
    if action is None:
        return
    result = action()
    if inspect.isawaitable(result):
        await result


class InOrder(MultiService):
    """A MultiService whose children start and stop one after another.

    ``MultiService`` starts its children all at once and stops them all at
    once; a daemon needs its store migrated before it listens, and its
    requests drained before the store closes. Here a child is ready when its
    ``starting`` Deferred fires (a Step, a Listener), or at once (any other
    service). ``started`` fires once every child is ready, or fails with the
    first that could not start; the ones after it are not started. Stopping
    stops the running children last to first, each after the one after it
    has stopped; a child that fails to stop is logged and the rest stop.
    """

    started: Deferred[None] | None = None

    def privilegedStartService(self) -> None:
        # Not passed to the children: twistd calls this before startService,
        # and a listener bound here would take connections before the store
        # is ready. A port below 1024 needs CAP_NET_BIND_SERVICE (or a
        # systemd: endpoint) rather than root.
        Service.privilegedStartService(self)

    def startService(self) -> None:
        Service.startService(self)
        self.started = Deferred.fromCoroutine(self._start_children())

    async def _start_children(self) -> None:
        for child in list(self):
            if not self.running:
                return  # stopped while starting: the rest never start
            child.startService()
            starting = getattr(child, "starting", None)
            if isinstance(starting, Deferred):
                await starting

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_children())

    async def _stop_children(self) -> None:
        for child in reversed(list(self)):
            if not child.running:
                continue
            try:
                await maybeDeferred(child.stopService)
            except Exception:
                log.failure("stopping {name} failed", name=child.name)


class Step(Service):
    """A service made of two callables, ``start`` and ``stop``; what either
    returns, if awaitable, is awaited before the tree moves on to the next
    child (``start``) or the one before (``stop``)."""

    def __init__(
        self, name: str, start: Action | None = None, stop: Action | None = None
    ) -> None:
        self.name = name
        self._start = start
        self._stop = stop
        self.starting: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        self.starting = Deferred.fromCoroutine(_run(self._start))

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(_run(self._stop))


@implementer(IStreamServerEndpoint)
@attrs.frozen
class _Reported:
    """An endpoint that tells its Listener how listening went.

    StreamServerEndpointService would log a failure to listen itself and
    carry on; the daemon must report it once (critical) and exit 1. So a
    failure goes to ``failed`` and the Deferred the service holds never
    fires: the service's stop cancels it, which it takes quietly.
    """

    _endpoint: IStreamServerEndpoint
    _listened: Callable[[IListeningPort], None]
    _failed: Callable[[Failure], None]

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        held: Deferred[IListeningPort] = Deferred()

        def listened(port: IListeningPort) -> None:
            self._listened(port)
            held.callback(port)

        self._endpoint.listen(protocolFactory).addCallbacks(listened, self._failed)
        return held


class Listener(StreamServerEndpointService):
    """A ``StreamServerEndpointService`` on an endpoint string:
    ``tcp:8080:interface=127.0.0.1``, ``ssl:8443:privateKey=key.pem``,
    ``unix:/run/uploadd.sock``...

    The string becomes an endpoint when the service starts, so a bad one
    fails the start as a taken port does: ``starting`` fails with why, or
    fires once it listens (``port`` is then set). Stopping closes the port,
    then runs ``after_close`` (letting requests in flight finish).
    """

    def __init__(
        self,
        name: str,
        reactor: IReactor,
        description: str,
        factory: IProtocolFactory,
        after_close: Action | None = None,
    ) -> None:
        super().__init__(None, factory)
        self.name = name
        self.description = description
        self._reactor = reactor
        self._after_close = after_close
        self.port: IListeningPort | None = None
        self.starting: Deferred[None] | None = None

    def privilegedStartService(self) -> None:
        # Listening waits for its turn in the tree (see InOrder).
        Service.privilegedStartService(self)

    def startService(self) -> None:
        starting: Deferred[None] = Deferred()
        self.starting = starting

        def listened(port: IListeningPort) -> None:
            self.port = port
            starting.callback(None)

        try:
            endpoint = serverFromString(self._reactor, self.description)
        except Exception as error:  # ValueError, KeyError, OSError (TLS files)
            Service.startService(self)
            starting.errback(BadEndpoint(f"endpoint {self.description}: {error}"))
            return
        self.endpoint = _Reported(endpoint, listened, starting.errback)
        Service.startService(self)
        # Listen now (what StreamServerEndpointService.startService does when
        # twistd has not made it listen early, which this class refuses).
        StreamServerEndpointService.privilegedStartService(self)

    def stopService(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self.endpoint is None:  # the string never made an endpoint
            Service.stopService(self)
        else:
            await super().stopService()
        self.port = None
        await _run(self._after_close)

    def port_or_path(self) -> int | str:
        """The TCP port it listens on, or its UNIX socket's path."""
        if self.port is None:
            return ""
        address = self.port.getHost()
        if isinstance(address, IPv4Address | IPv6Address):
            return address.port
        return where(address)

    def url(self) -> str:
        """``http://host:port`` (``https`` on TLS) to reach it over TCP; empty
        for a UNIX socket or before it listens."""
        if self.port is None:
            return ""
        address = self.port.getHost()
        if not isinstance(address, IPv4Address | IPv6Address):
            return ""
        scheme = "https" if self.description.startswith("ssl:") else "http"
        return f"{scheme}://{where(address)}"


class CannotStart(Exception):
    """A start refused for a reason its message says in full (no traceback)."""


def fail_start(failure: Failure, daemon: str, reactor: IReactorCore) -> None:
    """A daemon that could not start: say why (one critical line when it
    could not listen), stop, and exit 1 (twistd exits 0 after a plain stop;
    a daemon that never served must not)."""
    if failure.check(CannotListenError, BadEndpoint, CannotStart):
        log.critical(
            "{daemon} cannot start: {error}", daemon=daemon, error=failure.value
        )
    else:
        log.failure("{daemon} failed to start", failure, daemon=daemon)
    reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
    # twistd starts the services before it runs the reactor: a listener that
    # fails at once (noded binds all of its own then) fails before there is
    # a running reactor to stop, and stop() would raise and leave it running.
    reactor.callWhenRunning(reactor.stop)


def where(address: object) -> str:
    """``host:port`` of a TCP address, the path of a UNIX one."""
    if isinstance(address, IPv4Address | IPv6Address):
        host = f"[{address.host}]" if ":" in address.host else address.host
        return f"{host}:{address.port}"
    if isinstance(address, UNIXAddress):
        name = address.name
        return name.decode() if isinstance(name, bytes) else str(name)
    return str(address)
