"""What an operator graphs, read when ``/metrics`` is scraped: the storage
nodes as the pinger last saw them, the replication and repair backlogs,
the event bus, and the outbox (from the database, before each scrape).

Of instances sharing a database each reports the same outbox and the
repair leader's last pass (take the maximum across instances, not the sum).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.internet.interfaces import IReactorTime

from noded.metrics import Samples, enum_samples, one, sampled
from uploadd.cluster.registry import Health, Node, Registry
from uploadd.cluster.repair import Repairer
from uploadd.cluster.replicator import Replicator
from uploadd.events.bus import IEventBus
from uploadd.metrics import Metrics
from uploadd.store.interface import IMetadataStore

#: What a node says of itself ('unknown' until it first answers).
NODE_STATES = ("up", "read-only", "draining", "unknown")
#: What the operator wants of a node.
NODE_MODES = ("active", "draining")


def watch_cluster(
    metrics: Metrics, nodes: Registry, replicator: Replicator, repairer: Repairer
) -> None:
    """The nodes' health, state, space and ping time; files on their way to
    their replica count; what the last repair pass left short."""
    registry = metrics.registry

    def per_node(value: Callable[[Node], float | None]) -> Samples:
        return [
            ((node.id,), found)
            for node in list(nodes.nodes.values())
            if (found := value(node)) is not None
        ]

    def per_state(states: tuple[str, ...], current: Callable[[Node], str]) -> Samples:
        return [
            ((node.id, *labels), value)
            for node in list(nodes.nodes.values())
            for labels, value in enum_samples(current(node), states)
        ]

    sampled(
        registry,
        "uploadd_node_up",
        "1 while the pinger holds a node UP (rise/fall), else 0",
        ["node"],
        lambda: per_node(lambda n: float(n.health is Health.UP)),
    )
    sampled(
        registry,
        "uploadd_node_state",
        "The state each node last reported, 1 for that one ('unknown' until"
        " it first answers)",
        ["node", "state"],
        lambda: per_state(NODE_STATES, lambda n: n.reported_state),
    )
    sampled(
        registry,
        "uploadd_node_mode",
        "What the operator wants of each node, 1 for its current mode",
        ["node", "mode"],
        lambda: per_state(NODE_MODES, lambda n: n.record.mode),
    )
    sampled(
        registry,
        "uploadd_node_free_bytes",
        "Free bytes each node last reported",
        ["node"],
        lambda: per_node(lambda n: float(n.free) if n.space_asked else None),
    )
    sampled(
        registry,
        "uploadd_node_size_bytes",
        "Size of each node's filesystem as last reported",
        ["node"],
        lambda: per_node(lambda n: float(n.total) if n.space_asked else None),
    )
    sampled(
        registry,
        "uploadd_node_ping_rtt_seconds",
        "Round-trip time of pings to each node (smoothed)",
        ["node"],
        lambda: per_node(lambda n: n.rtt),
    )
    sampled(
        registry,
        "uploadd_replication_backlog_files",
        "Files being brought to their replica count by this instance now",
        [],
        lambda: one(len(replicator.busy)),
    )
    sampled(
        registry,
        "uploadd_repair_backlog_files",
        "Files the last repair pass left short of their replica count",
        [],
        lambda: one(repairer.last_pass.get("short")),
    )
    sampled(
        registry,
        "uploadd_repair_last_pass_timestamp_seconds",
        "When the last repair pass ended (Unix time)",
        [],
        lambda: one(repairer.last_pass.get("at")),
    )


def watch_bus(metrics: Metrics, bus: IEventBus) -> None:
    """Whether the bus takes events, how many it took, and (in process)
    how many wait in each queue."""
    registry = metrics.registry
    sampled(
        registry,
        "uploadd_bus_connected",
        "1 while the event bus takes events (RabbitMQ: connected), else 0",
        [],
        lambda: one(float(bool(bus.connected))),
    )
    sampled(
        registry,
        "uploadd_bus_published_events_total",
        "Events this instance handed to the bus",
        [],
        lambda: one(bus.published),
        counter=True,
    )
    sampled(
        registry,
        "uploadd_bus_queue_messages",
        "Messages waiting per queue of the in-process bus (none with RabbitMQ,"
        " which keeps its queues)",
        ["queue"],
        lambda: [((name,), float(n)) for name, n in (bus.depth() or {}).items()],
    )


@attrs.define
class _Outbox:
    depth: int | None = None
    oldest_age: float | None = None


def watch_outbox(metrics: Metrics, store: IMetadataStore, clock: IReactorTime) -> None:
    """Events waiting in the outbox and how long the oldest has waited,
    read from the database before each scrape."""
    outbox = _Outbox()

    async def read() -> None:
        outbox.depth = outbox.oldest_age = None
        depth = await store.outbox_depth()
        oldest = await store.outbox_oldest()
        outbox.depth = depth
        outbox.oldest_age = 0.0 if oldest is None else clock.seconds() - oldest

    metrics.refreshers.append(read)
    sampled(
        metrics.registry,
        "uploadd_outbox_events",
        "Events recorded and not yet handed to the bus",
        [],
        lambda: one(outbox.depth),
    )
    sampled(
        metrics.registry,
        "uploadd_outbox_oldest_age_seconds",
        "How long the oldest event in the outbox has waited (0: none waits)",
        [],
        lambda: one(outbox.oldest_age),
    )
