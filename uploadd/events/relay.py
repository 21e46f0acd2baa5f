"""The outbox relay: events written with their changes reach the bus, in order.

Each event row is written in the same transaction as the change it reports.
The relay publishes pending rows oldest first and marks them sent only once
the bus holds them; while the bus is unreachable they wait, and every one is
delivered when it is back. Kicked after each change and on a timer.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from uploadd.events.bus import IEventBus
from uploadd.store.interface import IMetadataStore

log = Logger()

BATCH = 200
#: The duty name under which one instance relays the shared outbox.
RELAY = "outbox relay"


@attrs.define
class OutboxRelay:
    _store: IMetadataStore
    _bus: IEventBus
    _clock: IReactorTime
    interval: float = 1.0
    _loop: LoopingCall | None = None
    _running: bool = False
    _again: bool = False
    delivered: int = 0

    def start(self) -> None:
        self._loop = LoopingCall(self.kick)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def kick(self, *ignored: Any) -> None:
        """Publish what waits, now (or right after the pass under way)."""
        if self._running:
            self._again = True
            return
        self._running = True
        Deferred.fromCoroutine(self.relay()).addErrback(
            lambda f: log.failure("the outbox relay failed", f)
        ).addBoth(self._done)

    def _done(self, _: object) -> None:
        self._running = False
        if self._again:
            self._again = False
            self.kick()

    async def relay(self) -> int:
        """Publish pending events in order until none wait or the bus fails
        (on the instance that leads the relay; the others leave it to it)."""
        sent = 0
        if not await self._store.leads(RELAY):
            return sent
        while events := await self._store.pending_events(BATCH):
            try:
                # One broker transaction per batch: all of it or none.
                await self._bus.publish_many(events)
            except Exception as error:
                log.warn("the event bus refused: {error}; events wait", error=error)
                return sent
            await self._store.mark_sent([e.id for e in events], self._clock.seconds())
            sent += len(events)
            self.delivered += len(events)
        return sent
