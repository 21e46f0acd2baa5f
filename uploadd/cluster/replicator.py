"""Fan-out: every stored file copied to ``replicas`` nodes, verified.

Copies to the chosen nodes run in parallel (at most ``transfers_per_node``
into one node at once), each through the node's client (for noded, an rsync
push with its own timeouts and deadline). A placed copy's bytes are reserved
on its node (``Node.in_flight``) until the copy has ended and the node has
reported its free space after it, so placement never counts the same room
twice. A copy counts only once the node's ``stat`` reports the file's size
and sha256. Failed copies are retried with backoff, on other nodes where the
first stays bad. With uploadd's own copy gone, a node holding the file is
asked to copy it (repair). With every copy verified, uploadd's own copy may
go (``keep_local``).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from noded.threads import Runner
from uploadd.cluster.interface import CopyOutcome
from uploadd.cluster.placement import choose
from uploadd.cluster.registry import Node, Registry
from uploadd.events import topics
from uploadd.failures import FailureLog
from uploadd.library import file_event
from uploadd.metrics import Metrics
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import FileRecord, IMetadataStore, Replica

log = Logger()


@attrs.frozen
class ReplicationSettings:
    replicas: int
    transfers_per_node: int
    keep_local: bool
    max_attempts: int = 6
    ping_timeout: float = 1.0


@attrs.define
class Replicator:
    _registry: Registry
    _store: IMetadataStore
    _blobs: BlobStore
    _run: Runner
    _clock: IReactorTime
    settings: ReplicationSettings
    _lanes: dict[str, DeferredSemaphore] = attrs.field(factory=dict)
    _busy: set[str] = attrs.field(factory=set)
    failures: FailureLog = attrs.field(kw_only=True)
    metrics: Metrics = attrs.field(factory=Metrics, kw_only=True)
    on_change: list[Callable[[], object]] = attrs.field(factory=list)
    _waiting: dict[str, list[Deferred[None]]] = attrs.field(factory=dict)

    def stored(self, record: FileRecord) -> None:
        """The Library's hook: a new file starts its way to the nodes."""
        Deferred.fromCoroutine(self.replicate(record.id)).addErrback(
            lambda f: log.failure("replicating {file_id} failed", f, file_id=record.id)
        )

    def first_copy(self, record: FileRecord) -> Deferred[None]:
        """Fires once ``record`` has a verified copy on a node, or its
        replication has ended without one (no node could take it)."""
        if record.id not in self._busy:
            return succeed(None)
        waiting: Deferred[None] = Deferred()
        self._waiting.setdefault(record.id, []).append(waiting)
        return waiting

    def _copied(self, file_id: str) -> None:
        for waiting in self._waiting.pop(file_id, []):
            waiting.callback(None)

    async def catch_up(self, file_ids: list[str]) -> int:
        """At startup: files whose bytes are here and that have fewer copies
        than wanted (this instance stopped before copying them) start their
        way to the nodes. How many did."""
        if not self._registry.nodes:
            return 0
        started = 0
        for file_id in file_ids:
            record = await self._store.get_file(file_id)
            if record is None or record.id in self._busy:
                continue
            if len(await self._store.replicas_of(file_id)) < self.settings.replicas:
                self.stored(record)
                started += 1
        return started

    @property
    def busy(self) -> set[str]:
        return set(self._busy)

    async def replicate(
        self, file_id: str, counts: Callable[[Node], bool] = lambda node: True
    ) -> int:
        """Bring ``file_id`` to its replica count as far as nodes allow,
        counting only copies on nodes for which ``counts`` holds; return how
        many such copies it has."""
        if file_id in self._busy:
            return -1
        self._busy.add(file_id)
        try:
            return await self._replicate(file_id, counts)
        finally:
            self._busy.discard(file_id)
            self._copied(file_id)

    async def _replicate(self, file_id: str, counts: Callable[[Node], bool]) -> int:
        record = await self._store.get_file(file_id)
        if record is None or not self._registry.nodes:
            # No cluster (the embedded default): uploadd's copy is the file.
            return 0
        recorded = await self._holders(file_id)
        if not recorded and not await self._run(self._blobs.path(file_id).exists):
            # No node has it and its bytes are not here: they are with the
            # instance that received it, which copies them (repair on
            # another instance must not count that as a failed copy).
            return 0
        holders = [node for node in recorded if counts(node)]
        bad: set[str] = {node.id for node in recorded}
        for attempt in range(self.settings.max_attempts):
            wanted = self.settings.replicas - len(holders)
            if wanted <= 0:
                break
            nodes = list(self._registry.nodes.values())
            targets = choose(nodes, wanted, record.size, holders=holders, exclude=bad)
            if not targets:
                if not holders and attempt + 1 < self.settings.max_attempts:
                    # Nodes may not be up yet (this instance just started):
                    # a file on no node at all is worth waiting for one.
                    await deferLater(self._clock, min(30.0, 0.5 * 2**attempt))
                    continue
                log.warn(
                    "{file_id} has {count} of {wanted} copies: no usable node has room",
                    file_id=file_id,
                    count=len(holders),
                    wanted=self.settings.replicas,
                )
                break
            sources = [n for n in recorded if n.serving]
            for node in targets:
                # Taken before anything else can be placed; _copy gives it back.
                node.in_flight += record.size
            copies = await DeferredList(
                [self._copy(record, node, sources) for node in targets],
                consumeErrors=True,
            )
            for node, (ok, copied) in zip(targets, copies, strict=True):
                if ok and copied:
                    holders.append(node)
                    self._copied(file_id)
                else:
                    bad.add(node.id)
            if len(holders) < self.settings.replicas:
                await deferLater(self._clock, min(30.0, 0.5 * 2**attempt))
        if len(holders) >= self.settings.replicas and not self.settings.keep_local:
            await self._run(self._blobs.remove, file_id)
            log.info("{file_id} fully replicated; local copy removed", file_id=file_id)
        return len(holders)

    async def holds(self, file_id: str) -> bool:
        """Whether this instance has its own copy of ``file_id``."""
        found: bool = await self._run(self._blobs.path(file_id).exists)
        return found

    async def can_copy(self, file_id: str) -> bool:
        """Whether this instance has a copy to make more from: its own, or
        one on a node that serves."""
        if await self.holds(file_id):
            return True
        return any(node.serving for node in await self._holders(file_id))

    async def _holders(self, file_id: str) -> list[Node]:
        replicas = await self._store.replicas_of(file_id)
        return [
            self._registry.nodes[r.node_id]
            for r in replicas
            if r.node_id in self._registry.nodes
        ]

    def _copy(
        self, record: FileRecord, node: Node, holders: list[Node]
    ) -> Deferred[bool]:
        return Deferred.fromCoroutine(self._placed_copy(record, node, holders))

    async def _placed_copy(
        self, record: FileRecord, node: Node, holders: list[Node]
    ) -> bool:
        """A copy placed on ``node``, in its lane; the bytes reserved for it
        are released once the node has reported its space after the copy,
        whichever way the copy ended."""
        lane = self._lanes.setdefault(
            node.id, DeferredSemaphore(self.settings.transfers_per_node)
        )
        copied = False
        try:
            copied = await lane.run(
                lambda: Deferred.fromCoroutine(self.copy(record, node, holders))
            )
        finally:
            landed = record.size if copied else 0
            await self._registry.refresh_space(node, self.settings.ping_timeout, landed)
            node.in_flight -= record.size
        return copied

    async def copy(self, record: FileRecord, node: Node, holders: list[Node]) -> bool:
        """One copy of ``record`` onto ``node``, verified; False if it failed."""
        started = self._clock.seconds()
        source = self._blobs.path(record.id)
        if await self._run(source.exists):
            outcome = await node.client.put(record.id, source)
        else:
            outcome = await self._relay(record.id, node, holders)
        if not outcome.ok:
            self._failed(record.id, node, outcome.reason, outcome.detail)
            return False
        try:
            held = await node.client.stat(record.id)
        except Exception as error:
            self._failed(record.id, node, f"verification failed: {error}", "")
            return False
        if (held.size, held.sha256) != (record.size, record.sha256):
            self._failed(record.id, node, "the copy does not match", str(held))
            return False
        replica = Replica(record.id, node.id, record.size, self._clock.seconds())
        event = file_event(topics.FILE_REPLICATED, record, self._clock)
        event.payload["node_id"] = node.id
        await self._store.add_replica(replica, [event])
        self.metrics.copies.labels(node.id, "verified").inc()
        self.metrics.copy_seconds.observe(self._clock.seconds() - started)
        for hook in self.on_change:
            hook()
        log.info("{file_id} verified on {node_id}", file_id=record.id, node_id=node.id)
        return True

    async def _relay(
        self, file_id: str, node: Node, holders: list[Node]
    ) -> CopyOutcome:
        """No local copy: ask a node that holds it to copy it (repair)."""
        for holder in holders:
            if not holder.serving:
                continue
            try:
                return await node.client.copy_from(file_id, holder.client)
            except Exception as error:
                log.warn(
                    "relay via {node_id} failed: {error}",
                    node_id=holder.id,
                    error=error,
                )
        return CopyOutcome(False, "no copy to relay from")

    def _failed(self, file_id: str, node: Node, reason: str, detail: str) -> None:
        self.metrics.copies.labels(node.id, "failed").inc()
        log.warn(
            "copy of {file_id} to {node_id} failed: {reason} {detail}",
            file_id=file_id,
            node_id=node.id,
            reason=reason,
            detail=detail,
        )
        self.failures.add("replication", reason, file_id=file_id, node_id=node.id)
