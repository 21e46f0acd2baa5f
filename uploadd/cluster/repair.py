"""Self-healing: files below their replica count are copied again; surplus
copies go; a node back from the dead is checked before it serves.

A copy counts while its node is healthy: UP, or DOWN for less than
``repair_after`` (a blip is not a loss), and not draining. Repair walks every
file a page at a time, plans, and acts: copy the file to new nodes (from
uploadd's own copy or a surviving node), or drop a copy that is surplus,
preferring to drop from draining nodes. A node returning from DOWN is
audited (every recorded copy checked with ``stat``) before downloads go to
it again. Of instances sharing a store one leads repair; it announces each
pass, so every instance's admin console shows the last one. A file with no
copy on a node and none here has its only copy on the instance that
received it (copying it still, or having failed to): the leader asks that
instance to copy it (``repair.wanted``) rather than failing to.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from uploadd.cluster.registry import Health, Node, Registry
from uploadd.cluster.replicator import Replicator
from uploadd.events import topics
from uploadd.events.bus import IEventBus
from uploadd.store.interface import Event, IMetadataStore

log = Logger()

PAGE = 500


class Verdict(enum.Enum):
    COPY = "copy"
    DROP = "drop"


@attrs.frozen
class Step:
    verdict: Verdict
    file_id: str
    node_id: str = ""


def healthy(node: Node, now: float, repair_after: float) -> bool:
    """Whether ``node``'s copies still count towards the replica count."""
    if node.record.mode == "draining":
        return False
    if node.health is Health.DOWN:
        return node.down_since is not None and now - node.down_since < repair_after
    return node.health is Health.UP


def plan(
    page: Iterable[tuple[str, list[str]]],
    nodes: dict[str, Node],
    replicas: int,
    now: float,
    repair_after: float,
) -> list[Step]:
    """What repair should do for one page of (file id, holder ids)."""
    steps: list[Step] = []
    for file_id, holder_ids in page:
        held = [nodes[h] for h in holder_ids if h in nodes]
        if not held:
            # Only uploadd's own copy (or a shortfall placement will retry).
            steps.append(Step(Verdict.COPY, file_id))
            continue
        good = [n for n in held if healthy(n, now, repair_after)]
        if len(good) < replicas:
            steps.append(Step(Verdict.COPY, file_id))
            continue
        # Enough good copies: copies on draining nodes can go, then any
        # surplus among good ones (the most recently added first; among nodes
        # added together, each file its own turn).
        for node in held:
            if node.record.mode == "draining" and node.serving:
                steps.append(Step(Verdict.DROP, file_id, node.id))
        surplus = len(good) - replicas
        order = sorted(good, key=lambda n: (-n.record.added_at, turn(file_id, n.id)))
        for node in order[: max(0, surplus)]:
            if node.serving:
                steps.append(Step(Verdict.DROP, file_id, node.id))
    return steps


def turn(file_id: str, node_id: str) -> bytes:
    """A node's place in line to give up a copy of ``file_id``, among nodes
    that tie otherwise: a hash, so drops spread over the tied nodes and a
    file's pick is the same on every pass."""
    return hashlib.sha256(f"{file_id}/{node_id}".encode()).digest()


@attrs.define
class Repairer:
    _registry: Registry
    _store: IMetadataStore
    _replicator: Replicator
    _clock: IReactorTime
    replicas: int
    repair_after: float
    interval: float
    _loop: LoopingCall | None = None
    _running: bool = False
    # Files repaired at once; transfers into each node are limited further
    # by the replicator.
    _lanes: DeferredSemaphore = attrs.field(factory=lambda: DeferredSemaphore(32))
    last_pass: dict[str, Any] = attrs.field(factory=dict)
    #: A new file short of copies is left this long to the replicator of
    #: the instance that received it before repair makes them.
    settle: float = 60.0
    _bus: IEventBus | None = None
    #: This repairer's name in its announcements, to know its own when heard.
    _me: str = attrs.field(factory=lambda: uuid.uuid4().hex)

    def attach(self, bus: IEventBus) -> None:
        """Announce passes on ``bus`` and take the leader's as the last;
        copy what the leader asks for and only this instance holds."""
        self._bus = bus
        bus.hear(topics.REPAIR_PASSED, self.heard)
        bus.hear(topics.REPAIR_WANTED, self.wanted)

    async def heard(self, event: Event) -> None:
        """The pass another instance (the leader) made is the last one."""
        if event.payload["origin"] != self._me:
            self.last_pass = dict(event.payload["pass"])

    async def wanted(self, event: Event) -> None:
        """The leader cannot copy a file: if its bytes are here, copy it."""
        file_id = event.payload["file_id"]
        if event.payload["origin"] != self._me and await self._replicator.holds(
            file_id
        ):
            await self._copy(file_id)

    def start(self) -> None:
        self._loop = LoopingCall(self.run_pass)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: log.failure("the repairer stopped", f)
        )

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def run_pass(self) -> Deferred[Any] | None:
        if self._running or not self._registry.nodes:
            return None
        self._running = True
        running = Deferred.fromCoroutine(self.repair())
        running.addErrback(lambda f: log.failure("a repair pass failed", f))

        def done(result: object) -> None:
            self._running = False

        running.addBoth(done)
        return running

    async def repair(self) -> dict[str, int]:
        """One pass over every file; returns counts of what it did: files
        examined, copies made, copies dropped, files left short of copies.
        On a store several instances share, only the one that leads repair
        makes the pass, so each lost copy is made once and each surplus one
        dropped once."""
        copied = dropped = examined = short = 0
        if not await self._store.leads("repair"):
            return {"examined": 0, "copied": 0, "dropped": 0, "short": 0}
        async for page in self._pages():
            examined += len(page)
            steps = plan(
                page,
                self._registry.nodes,
                self.replicas,
                self._clock.seconds(),
                self.repair_after,
            )
            outcomes = await DeferredList(
                [self._lanes.run(self._act, step) for step in steps],
                consumeErrors=True,
            )
            for step, (ok, done) in zip(steps, outcomes, strict=True):
                if step.verdict is Verdict.COPY:
                    made, left_short = done if ok else (0, True)
                    copied += made
                    short += left_short
                elif ok and done:
                    dropped += 1
        self.last_pass = {
            "at": self._clock.seconds(),
            "examined": examined,
            "copied": copied,
            "dropped": dropped,
            "short": short,
        }
        if self._bus is not None:
            news = {"origin": self._me, "pass": self.last_pass}
            self._bus.announce(Event(topics.REPAIR_PASSED, news)).addErrback(
                lambda f: log.info(
                    "a repair pass not announced: {why}", why=f.getErrorMessage()
                )
            )
        if copied or dropped:
            log.info(
                "repair pass: {examined} files, {copied} copied, {dropped} dropped",
                **self.last_pass,
            )
        return self.last_pass

    async def _pages(self) -> AsyncIterator[list[tuple[str, list[str]]]]:
        """Every file with its holders, a page at a time, in id order."""
        after = ""
        while page := await self._store.replica_map(after, PAGE):
            after = page[-1][0]
            yield page

    def _act(self, step: Step) -> Deferred[Any]:
        if step.verdict is Verdict.COPY:
            return Deferred.fromCoroutine(self._copy(step.file_id))
        return Deferred.fromCoroutine(self._drop(step.file_id, step.node_id))

    async def _copy(self, file_id: str) -> tuple[int, bool]:
        """How many copies that count were made of ``file_id``, and whether
        it is still short of them: before and after are both counted on
        healthy nodes only, as the replicator counts (a copy on a dead node
        is in the store but not in its count)."""

        def counts(node: Node) -> bool:
            return healthy(node, self._clock.seconds(), self.repair_after)

        nodes = self._registry.nodes
        replicas = await self._store.replicas_of(file_id)
        before = sum(
            1 for r in replicas if r.node_id in nodes and counts(nodes[r.node_id])
        )
        if before == len(replicas) and await self._settling(file_id):
            # Short of copies without having lost one: a new file that the
            # instance which received it is still copying (repairing it too
            # would copy it twice).
            return 0, True
        if not await self._replicator.can_copy(file_id):
            self._ask_holder(file_id)
            return 0, True
        after = await self._replicator.replicate(file_id, counts=counts)
        return max(0, after - before), after < self.replicas

    async def _settling(self, file_id: str) -> bool:
        record = await self._store.get_file(file_id)
        return (
            record is not None
            and self._clock.seconds() - record.created_at < self.settle
        )

    def _ask_holder(self, file_id: str) -> None:
        log.info(
            "{file_id} has no copy here or on a serving node: asking the"
            " instance that received it",
            file_id=file_id,
        )
        if self._bus is not None:
            news = {"origin": self._me, "file_id": file_id}
            self._bus.announce(Event(topics.REPAIR_WANTED, news)).addErrback(
                lambda f: log.info(
                    "copying {file_id} not asked: {why}",
                    file_id=file_id,
                    why=f.getErrorMessage(),
                )
            )

    async def _drop(self, file_id: str, node_id: str) -> bool:
        node = self._registry.nodes.get(node_id)
        if node is None:
            return False
        try:
            await node.client.delete(file_id)
        except Exception as error:
            log.warn(
                "dropping {file_id} from {node_id} failed: {error}",
                file_id=file_id,
                node_id=node_id,
                error=error,
            )
            return False
        await self._store.remove_replica(file_id, node_id)
        log.info(
            "dropped surplus {file_id} from {node_id}", file_id=file_id, node_id=node_id
        )
        return True

    def health_changed(self, node: Node, previous: Health) -> None:
        """The pinger's listener: a node back from DOWN is audited before it
        serves again."""
        if node.health is Health.UP and previous is Health.DOWN:
            node.auditing = True

            def audited(result: object) -> None:
                node.auditing = False

            Deferred.fromCoroutine(self.audit(node)).addErrback(
                lambda f: log.failure("auditing {node_id} failed", f, node_id=node.id)
            ).addBoth(audited)

    async def audit(self, node: Node) -> int:
        """Check every copy recorded on ``node``; forget (and delete) the ones
        it no longer holds correctly. Returns how many were bad."""
        bad = 0
        async for page in self._pages():
            for file_id, holders in page:
                if node.id not in holders:
                    continue
                record = await self._store.get_file(file_id)
                if record is None:
                    continue
                try:
                    held = await node.client.stat(file_id)
                    good = (held.size, held.sha256) == (
                        record.size,
                        record.sha256,
                    )
                except Exception:
                    good = False
                if not good:
                    bad += 1
                    await self._store.remove_replica(file_id, node.id)
                    log.warn(
                        "{node_id} no longer holds {file_id} correctly; forgotten",
                        node_id=node.id,
                        file_id=file_id,
                    )
        return bad
