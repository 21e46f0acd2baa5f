"""Prometheus metrics as both daemons serve them: every HTTP request counted
once, gauges read when scraped, and who may read ``/metrics``.

A request is counted when it ends (answered and finished, or its connection
closed) by method, route template and status; a route template, never the
raw path, so a client cannot grow the label set (paths no route takes share
one label, :data:`UNMATCHED`). A request the channel refused before any
resource saw it (a malformed head, a head that took too long) is counted
with the status the channel wrote; one that ended before any answer began
is counted with the status ``none``.

``/metrics`` is open to clients on this machine only (loopback, or a UNIX
socket, and no proxy header saying the request came from elsewhere) unless
``[metrics] token`` is set; then it takes ``Authorization: Bearer <token>``
from anywhere and nothing else.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.internet.address import UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from noded import problems
from noded.problems import Problem

log = Logger()

#: The route label of a request no route took.
UNMATCHED = "unmatched"
#: The status label of a request that ended before any answer began.
UNANSWERED = "none"
#: Methods counted by name; any other is counted as ``other``.
METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS"})
#: Request durations: from a few milliseconds to an upload of an hour.
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    3600,
)
#: Headers a proxy adds: a request carrying one came from another machine.
PROXY_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-real-ip")
_NO_METHOD = http.Request.method


def method_label(method: bytes | None) -> str:
    """``method`` as a label: the standard methods by name, others ``other``."""
    upper = (method or b"").upper()
    return upper.decode("ascii") if upper in METHODS else "other"


class HttpMetrics:
    """The requests of one Site (its ``http_metrics``):
    ``<prefix>_http_requests_total`` and
    ``<prefix>_http_request_duration_seconds``."""

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.requests = Counter(
            f"{prefix}_http_requests",
            "HTTP requests answered, by method, route template and status "
            f"('{UNMATCHED}': no route; status '{UNANSWERED}': the connection"
            " ended before an answer began)",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            f"{prefix}_http_request_duration_seconds",
            "Time from a request's first line to its end, by method and route",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def count(
        self, method: bytes | None, route: str, status: int | None, seconds: float
    ) -> None:
        labels = method_label(method), route
        self.requests.labels(*labels, UNANSWERED if status is None else status).inc()
        self.duration.labels(*labels).observe(max(0.0, seconds))


def site_metrics(channel: Any) -> HttpMetrics | None:
    """The HttpMetrics of the Site ``channel`` serves, if it has one."""
    meter = getattr(getattr(channel, "site", None), "http_metrics", None)
    return meter if isinstance(meter, HttpMetrics) else None


class MeteredRequest(Request):
    """A Request its Site's :class:`HttpMetrics` counts once, when it ends.

    Subclasses name the route (:meth:`metered_route`); the channel tells a
    request its method once its head is read (:meth:`head_read`: a request
    whose body never ends has no other), and what it answered when it
    refused it (:meth:`refused`).
    """

    _meter: HttpMetrics | None = None
    _clock: IReactorTime | None = None
    _began = 0.0
    #: Status and method of an answer the channel wrote itself.
    _refused: tuple[int, bytes | None] | None = None
    _method_read: bytes | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        meter = site_metrics(self.channel)
        if meter is not None:
            site: Any = getattr(self.channel, "site", None)
            self._meter, self._clock = meter, site.reactor
            self._began = site.reactor.seconds()
            self.notifyFinish().addBoth(self._ended)

    def metered_route(self) -> str:
        """The route template this request took (:data:`UNMATCHED` if none)."""
        return UNMATCHED

    def metered(self, route: str, status: int | None) -> None:
        """Hears how the request was counted (for families of its own)."""

    def head_read(self, method: bytes | None) -> None:
        """The request's head is complete: its method is ``method``."""
        self._method_read = method

    def refused(self, status: int, method: bytes | None) -> None:
        """The channel answered ``status`` for this request (whose method,
        as far as the head was read, is ``method``); no resource will."""
        if not self.startedWriting and self._refused is None:
            self._refused = (status, method)

    def _ended(self, result: object) -> None:
        if self._meter is None or self._clock is None:
            return
        method = self._method_read if self.method == _NO_METHOD else self.method
        status: int | None = self.code if self.startedWriting else None
        if self._refused is not None:
            status, method = self._refused[0], method or self._refused[1]
        seconds = self._clock.seconds() - self._began
        route = self.metered_route()
        self._meter.count(method, route, status, seconds)
        self.metered(route, status)


# -- gauges read at scrape time ----------------------------------------------

#: Label values and the value of each sample of a family.
Samples = Iterable[tuple[Sequence[str], float]]


class Sampled:
    """A family whose samples are read from the objects it describes when
    ``/metrics`` is scraped (nothing to keep up to date in between). A
    reading that fails leaves the family without samples, not the scrape
    failed."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        read: Callable[[], Samples],
        counter: bool = False,
    ) -> None:
        self.name = name
        self._documentation = documentation
        self._labels = list(labels)
        self._read = read
        self._counter = counter

    def _family(self) -> CounterMetricFamily | GaugeMetricFamily:
        if self._counter:
            return CounterMetricFamily(
                self.name, self._documentation, labels=self._labels
            )
        return GaugeMetricFamily(self.name, self._documentation, labels=self._labels)

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        try:
            for values, value in self._read():
                family.add_metric(list(values), value)
        except Exception:
            log.failure("reading {name} failed", name=self.name)
            family = self._family()
        yield family


def sampled(
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    labels: Sequence[str],
    read: Callable[[], Samples],
    counter: bool = False,
) -> None:
    """Register a :class:`Sampled` family on ``registry``."""
    registry.register(Sampled(name, documentation, labels, read, counter))


def one(value: float | None) -> Samples:
    """The samples of an unlabelled family: ``value``, or none if unknown."""
    return [] if value is None else [((), float(value))]


def enum_samples(current: str, states: Sequence[str]) -> Samples:
    """One sample per state, 1 for ``current`` and 0 for the others."""
    return [((state,), float(state == current)) for state in states]


# -- who may read /metrics ---------------------------------------------------


def is_local(request: IRequest) -> bool:
    """Whether ``request`` comes from this machine: a loopback address or a
    UNIX socket, with no proxy header saying it was sent on from elsewhere
    (a proxy on this machine connects from loopback on everyone's behalf)."""
    if any(request.requestHeaders.hasHeader(name) for name in PROXY_HEADERS):
        return False
    client = request.getClientAddress()
    if isinstance(client, UNIXAddress):
        return True
    try:
        address = ipaddress.ip_address(getattr(client, "host", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def refusal(request: IRequest, token: str) -> Problem | None:
    """Why ``request`` may not read ``/metrics`` under ``[metrics] token``,
    or None when it may."""
    if token:
        given = request.getHeader(b"authorization") or b""
        scheme, _, value = given.strip().partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(
            value.strip(), token.encode("utf-8")
        ):
            return None
        return Problem(
            401,
            "/metrics needs Authorization: Bearer with the [metrics] token",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if is_local(request):
        return None
    return Problem(
        403,
        "/metrics answers only clients on this machine; set [metrics] token to "
        "read it from elsewhere",
    )


class MetricsPage(Resource):
    """``GET /metrics``: the registry in Prometheus's text format, to whom
    :func:`refusal` lets in; ``refresh`` (reading what lives in a database or
    on disk) is awaited first, and its failure only logged."""

    isLeaf = True

    def __init__(
        self,
        registry: CollectorRegistry,
        token: str,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self._registry = registry
        self._token = token
        self._refresh = refresh

    def render_GET(self, request: IRequest) -> bytes | int:
        refused = refusal(request, self._token)
        if refused is not None:
            return problems.apply(request, refused)
        answering = Deferred.fromCoroutine(self._answer(request))
        answering.addErrback(lambda f: _failed(request, f))
        return NOT_DONE_YET

    render_HEAD = render_GET

    async def _answer(self, request: IRequest) -> None:
        if self._refresh is not None:
            try:
                await self._refresh()
            except Exception:
                log.failure("refreshing the metrics failed")
        body: bytes = generate_latest(self._registry)
        if _gone(request):
            return
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()


def _gone(request: IRequest) -> bool:
    finished: Any = request
    return bool(finished.finished or finished._disconnected)


def _failed(request: IRequest, failure: Failure) -> None:
    problem = problems.unexpected(failure)
    if not _gone(request) and not getattr(request, "startedWriting", False):
        request.write(problems.apply(request, problem))
        request.finish()
