"""Downloads from a node: ``GET /files/<id>?expires=&name=&type=&sig=``.

Only a URL signed by uploadd (with the cluster secret) and not yet expired
is served: 403 otherwise, 404 for a file this node does not hold. Byte
ranges work as on uploadd itself. Every error is problem+json. ``GET
/health`` answers 200 while the node serves, for load balancers and
container health checks, as uploadd's does; ``GET /metrics`` gives the
node's metrics (see noded/metrics.py for who may).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from noded import __version__, problems
from noded.channel import GuardedSite, ProblemRequest
from noded.config import HttpSection
from noded.download import BlobResource
from noded.drain import Drain, DrainedRequest, drained
from noded.files import NodeFiles
from noded.metrics import UNMATCHED, MeteredRequest
from noded.problems import Problem
from noded.signing import BadSignature, verify
from noded.stats import NodeStats

DOWNLOAD_ROUTE = "/files/<file_id>"
METRICS_ROUTE = "/metrics"


class Downloads(Resource):
    isLeaf = True

    def __init__(
        self,
        files: NodeFiles,
        key: bytes,
        clock: IReactorTime,
        metrics: Resource | None = None,
    ) -> None:
        super().__init__()
        self._files = files
        self._key = key
        self._clock = clock
        self._metrics = metrics

    def render(self, request: IRequest) -> bytes | int:
        if request.method not in (b"GET", b"HEAD"):
            return problems.apply(
                request,
                Problem(
                    405,
                    "a node serves downloads only: GET or HEAD",
                    headers={"Allow": "GET, HEAD"},
                ),
            )
        rendered: bytes | int = super().render(request)
        return rendered

    def render_GET(self, request: IRequest) -> bytes | int:
        segments = [s.decode("utf-8", "replace") for s in request.postpath]
        if segments == ["health"]:
            request.setHeader(b"content-type", b"application/json")
            request.setHeader(b"cache-control", b"no-store")
            return json.dumps({"status": "ok", "version": __version__}).encode()
        if segments == ["metrics"] and self._metrics is not None:
            shown: bytes | int = self._metrics.render(request)
            return shown
        if len(segments) != 2 or segments[0] != "files":
            return problems.apply(request, problems.not_found("no such resource"))
        file_id = segments[1]
        query = {
            k.decode(): v[-1].decode("utf-8", "replace")
            for k, v in request.args.items()
        }
        try:
            grant = verify(self._key, file_id, query, self._clock.seconds())
        except BadSignature as error:
            return problems.apply(request, Problem(403, str(error)))
        try:
            path = self._files.path(file_id)
        except Exception:
            return problems.apply(request, problems.not_found("no such file"))
        if not path.exists():
            return problems.apply(
                request, problems.not_found(f"no such file: {file_id}")
            )
        served: Any = BlobResource(
            path, grant.name, grant.content_type, grant.sha256 or None
        )
        rendered: bytes | int = served.render(request)
        return rendered

    render_HEAD = render_GET


class NodeRequest(DrainedRequest, MeteredRequest, ProblemRequest):
    """A download: known to the drain at shutdown, its failures problem+json,
    counted when it ends (and as a download, with the bytes it sent)."""

    stats: NodeStats | None = None

    def metered_route(self) -> str:
        segments = (getattr(self, "path", None) or b"").split(b"/")[1:]
        if len(segments) == 2 and segments[0] == b"files":
            return DOWNLOAD_ROUTE
        return METRICS_ROUTE if segments == [b"metrics"] else UNMATCHED

    def metered(self, route: str, status: int | None) -> None:
        if self.stats is not None and route == DOWNLOAD_ROUTE and status:
            self.stats.downloads.labels(status).inc()

    def write(self, data: bytes) -> None:
        if (
            self.stats is not None
            and self.method != b"HEAD"
            and self.code in (200, 206)
            and self.metered_route() == DOWNLOAD_ROUTE
        ):
            self.stats.download_bytes.inc(len(data))
        super().write(data)


def download_site(
    files: NodeFiles,
    key: bytes,
    reactor: IReactorTime,
    http: HttpSection,
    drain: Drain,
    stats: NodeStats | None = None,
    metrics: Resource | None = None,
) -> GuardedSite:
    """The Site serving a node's downloads (and ``metrics``, the page of
    ``stats``, at /metrics): slow clients timed out, every error (a 405 and
    a failure too) problem+json, requests drained at stop."""
    return GuardedSite(
        Downloads(files, key, reactor, metrics),
        requestFactory=drained(NodeRequest, drain, stats=stats),
        timeout=http.idle_timeout,
        header_timeout=http.header_timeout,
        http_metrics=stats.http if stats is not None else None,
        reactor=reactor,
    )
