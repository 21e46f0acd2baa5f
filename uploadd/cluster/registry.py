"""The nodes uploadd knows and what it last heard from each.

Records (id, address, mode) persist in the metadata store; health (UP or
DOWN by rise/fall, space, load, round-trip time, last seen) lives in memory
and is what placement, downloads and repair read. Each node is reached
through its :class:`~uploadd.cluster.interface.INodeClient`, made by the
factory the registry is given; nothing here knows what kind of node it is.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from uploadd import errors
from uploadd.cluster.interface import INodeClient, NodeClientFactory, NodeStatus
from uploadd.store.interface import Conflict, IMetadataStore, NodeRecord

log = Logger()


class Health(enum.Enum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@attrs.define(eq=False)
class Node:
    """One node: its record, how to reach it, and its latest health."""

    record: NodeRecord
    client: INodeClient
    health: Health = Health.UNKNOWN
    reported_state: str = "unknown"
    free: int = 0
    total: int = 0
    reserved: int = 0
    load: float = 0.0
    zone: str = ""
    rtt: float | None = None
    last_seen: float | None = None
    down_since: float | None = None
    successes: int = 0
    failures: int = 0
    auditing: bool = False
    # Bytes of copies placed on this node that have not finished yet: room
    # the last reported ``free`` does not know is taken.
    in_flight: int = 0
    # Pings asked, and the newest whose space is known: an answer to an older
    # ping (it may have been measured before a copy landed) is not applied.
    pings_asked: int = 0
    space_asked: int = 0

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def room(self) -> int:
        """Bytes this node may still take above its reserve, counting the
        copies already on their way to it."""
        return self.free - self.reserved - self.in_flight

    def note_space(self, asked: int, answer: NodeStatus) -> None:
        """The space reported by the answer to ping number ``asked``, unless
        a later ping has been answered already."""
        if asked > self.space_asked:
            self.space_asked = asked
            self.free, self.total = answer.free, answer.total
            self.reserved = answer.reserved

    @property
    def usable(self) -> bool:
        """May take new replicas: UP with its last ping answered (a copy sent
        to a node that stopped answering would only fail), active, not
        read-only or draining."""
        return (
            self.health is Health.UP
            and self.failures == 0
            and self.record.mode == "active"
            and self.reported_state == "up"
            and self.free > self.reserved
        )

    @property
    def serving(self) -> bool:
        """May serve downloads: UP, its last ping answered (a node that stops
        answering is avoided at once, not only once it is DOWN) and not being
        audited after an absence (draining and read-only nodes still serve)."""
        return self.health is Health.UP and self.failures == 0 and not self.auditing

    def document(self, replica_count: int | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.record.host,
            "port": self.record.port,
            "mode": self.record.mode,
            "health": self.health.value,
            "state": self.reported_state,
            "zone": self.zone,
            "free": self.free,
            "total": self.total,
            "reserved": self.reserved,
            "in_flight": self.in_flight,
            "load": self.load,
            "rtt_ms": None if self.rtt is None else round(self.rtt * 1000, 2),
            "last_seen": self.last_seen,
            "down_since": self.down_since,
            "auditing": self.auditing,
            "replicas": replica_count,
        }


@attrs.define
class Registry:
    _store: IMetadataStore
    _clock: IReactorTime
    _client_for: NodeClientFactory
    nodes: dict[str, Node] = attrs.field(factory=dict)

    def _node(self, record: NodeRecord) -> Node:
        return Node(record, self._client_for(record))

    async def ping(self, node: Node, within: float) -> NodeStatus:
        """``node``'s answer to a ping within ``within`` seconds (TimeoutError
        after); the space it reports is noted on the node."""
        node.pings_asked += 1
        asked = node.pings_asked

        async def asking() -> NodeStatus:
            return await node.client.ping()

        pending = Deferred.fromCoroutine(asking())
        pending.addTimeout(within, self._clock)
        try:
            answer = await pending
        except (DeferredTimeout, CancelledError):
            # Deferred's own timeout error reads "(1.0, 'Deferred')" in a log.
            raise TimeoutError(f"no answer to Ping within {within:g} s") from None
        node.note_space(asked, answer)
        return answer

    async def refresh_space(self, node: Node, within: float, landed: int) -> None:
        """Ask ``node`` for its free space after a copy of ``landed`` bytes
        (0 if it failed) ended; if it does not answer, take ``landed`` off
        what it last reported, so the copy is not forgotten until it does."""
        try:
            await self.ping(node, within)
        except Exception as error:
            log.info(
                "no free space from {node_id} after a copy: {error}",
                node_id=node.id,
                error=reason(error),
            )
            # An answer to an earlier ping predates the copy: ignore it.
            node.space_asked = node.pings_asked
            node.free -= landed

    async def refresh(self) -> None:
        """Pick up nodes added or removed in the store by another process
        (uploadctl), so they are used without a restart."""
        records = {record.id: record for record in await self._store.list_nodes()}
        for node_id in set(self.nodes) - set(records):
            self.nodes.pop(node_id).client.disconnect()
        for node_id, record in records.items():
            node = self.nodes.get(node_id)
            if node is None:
                self.nodes[node_id] = self._node(record)
                continue
            if (node.record.host, node.record.port) != (record.host, record.port):
                # Moved by another instance's configuration: reach it there.
                node.client.disconnect()
                node.client = self._client_for(record)
            node.record = record

    async def load(self, seeds: tuple[tuple[str, str, int], ...]) -> None:
        """Nodes from the store, plus any configured seed not there yet; a
        seed the store knows at another address is moved to the configured
        one (the node listens elsewhere now, with its files)."""
        for record in await self._store.list_nodes():
            self.nodes[record.id] = self._node(record)
        for node_id, host, port in seeds:
            known = self.nodes.get(node_id)
            if known is not None:
                if (known.record.host, known.record.port) != (host, port):
                    await self._move(known, host, port)
                continue
            try:
                await self.add(node_id, host, port)
            except errors.Conflict:
                # Another instance starting at the same time added it.
                await self.refresh()

    async def _move(self, node: Node, host: str, port: int) -> None:
        record = attrs.evolve(node.record, host=host, port=port)
        await self._store.save_node(record)
        node.client.disconnect()
        self.nodes[record.id] = self._node(record)
        log.warn(
            "node {node_id} moved from {was} to {host}:{port} ([cluster] nodes)",
            node_id=record.id,
            was=f"{node.record.host}:{node.record.port}",
            host=host,
            port=port,
        )

    async def add(self, node_id: str, host: str, port: int) -> Node:
        record = NodeRecord(node_id, host, port, self._clock.seconds())
        try:
            await self._store.add_node(record)
        except Conflict:
            raise errors.Conflict(f"node {node_id!r} is registered already") from None
        node = self.nodes[node_id] = self._node(record)
        log.info(
            "node {node_id} added at {host}:{port}",
            node_id=node_id,
            host=host,
            port=port,
        )
        return node

    def get(self, node_id: str) -> Node:
        node = self.nodes.get(node_id)
        if node is None:
            raise errors.NotFound(f"no such node: {node_id}")
        return node

    async def set_mode(self, node_id: str, mode: str) -> Node:
        node = self.get(node_id)
        node.record = attrs.evolve(node.record, mode=mode)
        await self._store.save_node(node.record)
        log.info("node {node_id} is now {mode}", node_id=node_id, mode=mode)
        return node

    async def remove(self, node_id: str) -> None:
        node = self.get(node_id)
        node.client.disconnect()
        await self._store.delete_node(node_id)
        del self.nodes[node_id]
        log.info("node {node_id} removed", node_id=node_id)


def reason(error: BaseException) -> str:
    """An error as a log line can show it: its message, or its kind."""
    return str(error) or type(error).__name__
