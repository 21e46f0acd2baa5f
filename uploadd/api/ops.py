"""``/health`` and ``/metrics``: for load balancers and Prometheus."""

from __future__ import annotations

from collections.abc import Callable

import attrs
from klein import Klein
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from twisted.web.iweb import IRequest

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
            },
        )

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: IRequest) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        body: bytes = generate_latest(self._metrics.registry)
        return body
