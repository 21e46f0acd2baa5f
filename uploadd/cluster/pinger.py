"""The pinger: a ping to every node on a timer; rise/fall make UP and DOWN.

A node is UP after ``rise`` answered pings in a row and DOWN after ``fall``
unanswered ones (a ping unanswered within ``timeout`` fails). Downloads
avoid a node from its first failed ping (see ``Node.serving``). Round-trip
time is smoothed (EWMA). A failed ping lets go of the node's connection; the
next ping connects again.

A node that keeps failing is logged when its state changes (a first missed
ping, DOWN, a new reason, answering again) and, while it stays DOWN, at a
growing interval: one ping interval after it fell, then twice that, and so
on up to ``remind_at_most`` (5 min), so a node left down for a day writes
about 300 lines, not one per ping (43 200).
"""

from __future__ import annotations

from collections.abc import Callable
from weakref import WeakKeyDictionary

import attrs
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from uploadd.cluster.interface import NodeStatus
from uploadd.cluster.registry import Health, Node, Registry, reason
from uploadd.metrics import Metrics

log = Logger()

SMOOTHING = 0.3


@attrs.define
class Failing:
    """A node's run of failed pings, and when it was last logged.

    Gaps are counted in pings, not read off the clock: a ping fails a little
    later or sooner each time (a refusal at once, a timeout after it), and a
    reminder due "after 4 s" would slip to the next ping now and then.
    """

    reason: str
    since: float
    # The failed ping (its number in the run) of the last line written, None
    # before any, and how many pings after it the next reminder is due.
    told_at: int | None = None
    gap: int = 1

    def told(self, failures: int) -> None:
        """A change was logged: the next reminder is one ping away."""
        self.told_at, self.gap = failures, 1

    def due(self, failures: int) -> bool:
        return self.told_at is not None and failures - self.told_at >= self.gap

    def reminded(self, failures: int, at_most: int) -> None:
        self.told_at, self.gap = failures, min(self.gap * 2, at_most)


@attrs.define
class Pinger:
    _registry: Registry
    _clock: IReactorTime
    interval: float
    timeout: float
    rise: int
    fall: int
    # The longest gap between two lines about a node that keeps failing.
    remind_at_most: float = 300.0
    _loop: LoopingCall | None = None
    # Told of every change of health: (node, its health before).
    on_change: list[Callable[[Node, Health], object]] = attrs.field(factory=list)
    _failing: WeakKeyDictionary[Node, Failing] = attrs.field(factory=WeakKeyDictionary)

    metrics: Metrics = attrs.field(factory=Metrics, kw_only=True)

    def start(self) -> None:
        self._loop = LoopingCall(self.ping_all)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=True).addErrback(
            lambda f: log.failure("the pinger stopped", f)
        )

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        for node in self._registry.nodes.values():
            node.client.disconnect()

    def ping_all(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._round())

    async def _round(self) -> None:
        try:
            await self._registry.refresh()
        except Exception:
            log.failure("reading the node list failed")
        await DeferredList(
            [
                Deferred.fromCoroutine(self.ping(node))
                for node in list(self._registry.nodes.values())
            ],
            consumeErrors=True,
        )

    async def ping(self, node: Node) -> None:
        started = self._clock.seconds()
        try:
            answer = await self._registry.ping(node, self.timeout)
        except Exception as error:
            node.client.disconnect()
            self.metrics.pings.labels(node.id, "failed").inc()
            self._failed(node, error)
            return
        self.metrics.pings.labels(node.id, "answered").inc()
        self._answered(node, answer, self._clock.seconds() - started)

    def _answered(self, node: Node, answer: NodeStatus, rtt: float) -> None:
        failing = self._failing.pop(node, None)
        if failing is not None and failing.told_at is not None:
            log.info(
                "node {node_id} answers again after {count} failed pings in"
                " {seconds:.0f} s",
                node_id=node.id,
                count=node.failures,
                seconds=self._clock.seconds() - failing.since,
            )
        node.failures = 0
        node.successes += 1
        node.last_seen = self._clock.seconds()
        node.rtt = rtt if node.rtt is None else node.rtt + SMOOTHING * (rtt - node.rtt)
        node.reported_state, node.load = answer.state, answer.load
        node.zone = answer.zone
        if node.health is not Health.UP and node.successes >= self.rise:
            self._become(node, Health.UP)

    def _failed(self, node: Node, error: Exception) -> None:
        node.successes = 0
        node.failures += 1
        now, why, count = self._clock.seconds(), reason(error), node.failures
        at_most = max(1, round(self.remind_at_most / self.interval))
        failing = self._failing.get(node)
        if failing is None:
            failing = self._failing[node] = Failing(why, now)
        if node.health is Health.UP and node.failures == 1:
            log.info(
                "node {node_id} missed a ping; downloads avoid it: {error}",
                node_id=node.id,
                error=why,
            )
            failing.told(count)
        elif node.health is not Health.DOWN and node.failures >= self.fall:
            log.warn(
                "node {node_id} DOWN after {count} failed pings: {error}",
                node_id=node.id,
                count=count,
                error=why,
            )
            self._become(node, Health.DOWN)
            failing.told(count)
        elif why != failing.reason and failing.told_at is not None:
            log.warn(
                "node {node_id} fails differently now: {error} (was: {before})",
                node_id=node.id,
                error=why,
                before=failing.reason,
            )
            # Logged at once, but the gap keeps growing: a node whose reason
            # flickers (a timeout, then a refusal) is not reminded of sooner.
            failing.reminded(count, at_most)
        elif node.health is Health.DOWN and failing.due(count):
            log.warn(
                "node {node_id} is still {health}: {error} ({count} failed pings"
                " in {seconds:.0f} s)",
                node_id=node.id,
                health=node.health.value,
                error=why,
                count=count,
                seconds=now - failing.since,
            )
            failing.reminded(count, at_most)
        failing.reason = why

    def _become(self, node: Node, health: Health) -> None:
        previous, node.health = node.health, health
        node.down_since = self._clock.seconds() if health is Health.DOWN else None
        log.info("node {node_id} is {health}", node_id=node.id, health=health.value)
        for listener in self.on_change:
            listener(node, previous)
