"""The pinger: a ping to every node on a timer; rise/fall make UP and DOWN.

A node is UP after ``rise`` answered pings in a row and DOWN after ``fall``
unanswered ones (a ping unanswered within ``timeout`` fails). Downloads
avoid a node from its first failed ping (see ``Node.serving``). Round-trip
time is smoothed (EWMA). A failed ping lets go of the node's connection; the
next ping connects again.
"""

from __future__ import annotations

from collections.abc import Callable

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
class Pinger:
    _registry: Registry
    _clock: IReactorTime
    interval: float
    timeout: float
    rise: int
    fall: int
    _loop: LoopingCall | None = None
    # Told of every change of health: (node, its health before).
    on_change: list[Callable[[Node, Health], object]] = attrs.field(factory=list)
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
        if node.health is Health.UP and node.failures == 1:
            log.info(
                "node {node_id} missed a ping; downloads avoid it: {error}",
                node_id=node.id,
                error=reason(error),
            )
        if node.health is not Health.DOWN and node.failures >= self.fall:
            log.warn(
                "node {node_id} DOWN after {count} failed pings: {error}",
                node_id=node.id,
                count=node.failures,
                error=reason(error),
            )
            self._become(node, Health.DOWN)

    def _become(self, node: Node, health: Health) -> None:
        previous, node.health = node.health, health
        node.down_since = self._clock.seconds() if health is Health.DOWN else None
        log.info("node {node_id} is {health}", node_id=node.id, health=health.value)
        for listener in self.on_change:
            listener(node, previous)
