"""Prometheus metrics of one uploadd process, on a registry of its own.

The families counted where things happen live here; the parts that count
take this object. Gauges read from the cluster, the bus and the outbox at
scrape time are registered by ``uploadd/gauges.py``. Requests are counted
by the Site (``noded/metrics.py``).

Uploads are counted once per upload, not per request: an upload of one
request (``put``, ``multipart``, a worker's ``output``) when its request
ends, a resumable one (``tus``, ``range``) when it becomes a file, expires
or is terminated, however many requests carried its bytes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from twisted.logger import Logger

from noded.metrics import HttpMetrics

log = Logger()

#: How an upload ended: it became a file; it failed (its one request did not
#: store it, or a resumable one broke before its client learnt its address);
#: it was a complete tus partial upload (joined into a file later); it
#: expired; its client terminated it.
OUTCOMES = ("stored", "failed", "partial", "expired", "terminated")

#: Durations of work measured in seconds to hours.
LONG_BUCKETS = (0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)


@attrs.define
class Metrics:
    registry: CollectorRegistry = attrs.field(factory=CollectorRegistry)
    #: Awaited before each scrape: readings of what lives in the database.
    refreshers: list[Callable[[], Awaitable[None]]] = attrs.field(factory=list)
    http: HttpMetrics = attrs.field(init=False)
    uploads_started: Counter = attrs.field(init=False)
    uploads: Counter = attrs.field(init=False)
    upload_seconds: Histogram = attrs.field(init=False)
    bytes_received: Counter = attrs.field(init=False)
    bodies_in_flight: Gauge = attrs.field(init=False)
    pings: Counter = attrs.field(init=False)
    copies: Counter = attrs.field(init=False)
    copy_seconds: Histogram = attrs.field(init=False)
    transcodes: Counter = attrs.field(init=False)
    transcode_seconds: Histogram = attrs.field(init=False)
    deliveries: Counter = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        registry = self.registry
        self.http = HttpMetrics(registry, "uploadd")
        self.uploads_started = Counter(
            "uploadd_uploads_started",
            "Uploads begun, by protocol (put, multipart, output, tus, range)",
            ["protocol"],
            registry=registry,
        )
        self.uploads = Counter(
            "uploadd_uploads",
            "Uploads ended, once each, by protocol and outcome (stored: became a"
            " file; failed: never stored, and no client can resume it;"
            " partial: a tus partial upload complete; expired; terminated)",
            ["protocol", "outcome"],
            registry=registry,
        )
        self.upload_seconds = Histogram(
            "uploadd_upload_duration_seconds",
            "Time from an upload's beginning to its stored file, by protocol",
            ["protocol"],
            buckets=LONG_BUCKETS,
            registry=registry,
        )
        self.bytes_received = Counter(
            "uploadd_upload_received_bytes",
            "Upload body bytes written to disk, by protocol",
            ["protocol"],
            registry=registry,
        )
        self.bodies_in_flight = Gauge(
            "uploadd_upload_bodies_in_flight",
            "Upload bodies being received now (one per request)",
            registry=registry,
        )
        self.pings = Counter(
            "uploadd_node_pings",
            "Pings of storage nodes, by node and outcome (answered, failed)",
            ["node", "outcome"],
            registry=registry,
        )
        self.copies = Counter(
            "uploadd_replica_copies",
            "Copies of files made on nodes, by node and outcome (verified, failed)",
            ["node", "outcome"],
            registry=registry,
        )
        self.copy_seconds = Histogram(
            "uploadd_replica_copy_duration_seconds",
            "Time a verified copy onto a node took, transfer and check",
            buckets=LONG_BUCKETS,
            registry=registry,
        )
        self.transcodes = Counter(
            "uploadd_transcode_jobs",
            "Transcode jobs entering a state, by profile and state (pending:"
            " asked for; running: an attempt started; ready; failed)",
            ["profile", "state"],
            registry=registry,
        )
        self.transcode_seconds = Histogram(
            "uploadd_transcode_duration_seconds",
            "Time from a job's last start to its end, by profile and state"
            " (ready, failed)",
            ["profile", "state"],
            buckets=LONG_BUCKETS,
            registry=registry,
        )
        self.deliveries = Counter(
            "uploadd_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered: a 2xx answer;"
            " refused: any other status; unreachable: no answer)",
            ["outcome"],
            registry=registry,
        )

    def upload_ended(
        self, protocol: str, outcome: str, seconds: float | None = None
    ) -> None:
        """An upload ended with ``outcome``, ``seconds`` after it began when
        it was stored."""
        self.uploads.labels(protocol, outcome).inc()
        if seconds is not None:
            self.upload_seconds.labels(protocol).observe(max(0.0, seconds))

    async def refresh(self) -> None:
        """Read what the families sampled at scrape time need from the
        database; a reading that fails is logged (its family is then empty)."""
        for refresher in self.refreshers:
            try:
                await refresher()
            except Exception:
                log.failure("reading a metric failed")
