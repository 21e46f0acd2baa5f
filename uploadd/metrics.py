"""Prometheus metrics of one uploadd process, on a registry of its own."""

from __future__ import annotations

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@attrs.define
class Metrics:
    registry: CollectorRegistry = attrs.field(factory=CollectorRegistry)
    requests: Counter = attrs.field(init=False)
    bytes_received: Counter = attrs.field(init=False)
    uploads_in_flight: Gauge = attrs.field(init=False)
    upload_seconds: Histogram = attrs.field(init=False)
    uploads: Counter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.requests = Counter(
            "uploadd_http_requests",
            "HTTP requests answered, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.bytes_received = Counter(
            "uploadd_upload_bytes_received",
            "Upload body bytes written to disk",
            registry=self.registry,
        )
        self.uploads_in_flight = Gauge(
            "uploadd_uploads_in_flight",
            "Upload bodies being received now",
            registry=self.registry,
        )
        self.upload_seconds = Histogram(
            "uploadd_upload_duration_seconds",
            "Time from upload headers to stored file",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.uploads = Counter(
            "uploadd_uploads",
            "Uploads ended, by outcome",
            ["outcome"],
            registry=self.registry,
        )
