"""``/health`` and ``/metrics``: for load balancers and Prometheus.

``/metrics`` answers whom ``[metrics] token`` lets in (noded/metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from noded.metrics import MetricsPage
from uploadd import __version__
from uploadd.api import problems
from uploadd.api.http import json_body
from uploadd.metrics import Metrics


@attrs.define(slots=False)
class OpsAPI:
    app = Klein()
    problems.install(app)

    _metrics: Metrics
    _in_flight: Callable[[], int]
    _token: str = ""
    #: Bytes received and not yet on disk, across all uploads.
    _held: Callable[[], int] = lambda: 0

    @app.route("/health", methods=["GET"])
    def health(self, request: IRequest) -> bytes:
        request.setHeader(b"cache-control", b"no-store")
        return json_body(
            request,
            200,
            {
                "status": "ok",
                "version": __version__,
                "uploads_in_flight": self._in_flight(),
                "ingest_held_bytes": self._held(),
            },
        )

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: IRequest) -> IResource:
        return MetricsPage(self._metrics.registry, self._token, self._metrics.refresh)
