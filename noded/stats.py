"""What a node tells Prometheus: its requests, downloads, relays, space,
state and the replicas it holds (``/metrics`` on the download listener).

Space and state are read at each scrape (``statvfs``); the replicas held
are counted by walking their directories, at most every ``USAGE_EVERY``
seconds, since copies arrive through the rsync daemon and noded is not told.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from twisted.internet.interfaces import IReactorTime

from noded.files import NodeFiles
from noded.metrics import HttpMetrics, enum_samples, one, sampled
from noded.threads import Runner

#: The states a node reports (``[node] state``, or read-only below reserve).
STATES = ("up", "read-only", "draining")
#: How often, at most, the replicas held are counted again.
USAGE_EVERY = 60.0


class NodeStats:
    """noded's metric families, on a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.http = HttpMetrics(self.registry, "noded")
        self.downloads = Counter(
            "noded_downloads",
            "Downloads of replicas answered, by status (206: a range)",
            ["status"],
            registry=self.registry,
        )
        self.download_bytes = Counter(
            "noded_download_sent_bytes",
            "Replica bytes written to downloading clients",
            registry=self.registry,
        )
        self.relays = Counter(
            "noded_relays",
            "Replicas this node pushed to another node (repair), by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.relay_seconds = Histogram(
            "noded_relay_duration_seconds",
            "Time a push of a replica to another node took",
            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.free: int | None = None
        self.total: int | None = None
        self.state: str | None = None
        self.stored: tuple[int, int] | None = None
        self._counted_at = float("-inf")

    def watch(
        self,
        files: NodeFiles,
        state: Callable[[int], str],
        reserve: int,
        run: Runner,
        clock: IReactorTime,
    ) -> Callable[[], Awaitable[None]]:
        """Register the families read from the node's disk; returns the
        refresh a scrape awaits first."""
        registry = self.registry
        sampled(
            registry,
            "noded_free_bytes",
            "Bytes free for replicas on the node's filesystem",
            [],
            lambda: one(self.free),
        )
        sampled(
            registry,
            "noded_size_bytes",
            "Size of the filesystem holding the replicas",
            [],
            lambda: one(self.total),
        )
        sampled(
            registry,
            "noded_reserved_bytes",
            "Free space below which the node turns read-only ([node] reserve)",
            [],
            lambda: one(reserve),
        )
        sampled(
            registry,
            "noded_state",
            "The state the node reports: 1 for the current one",
            ["state"],
            lambda: enum_samples(self.state, STATES) if self.state else [],
        )
        sampled(
            registry,
            "noded_stored_files",
            f"Replicas held (counted at most every {USAGE_EVERY:g} s)",
            [],
            lambda: one(self.stored[0] if self.stored else None),
        )
        sampled(
            registry,
            "noded_stored_bytes",
            f"Bytes of the replicas held (counted at most every {USAGE_EVERY:g} s)",
            [],
            lambda: one(self.stored[1] if self.stored else None),
        )

        async def refresh() -> None:
            self.free, self.total = await run(files.space)
            self.state = state(self.free)
            now = clock.seconds()
            if now - self._counted_at >= USAGE_EVERY:
                self._counted_at = now
                self.stored = await run(files.usage)

        return refresh
