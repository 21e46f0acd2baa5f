"""The outbox relay: events written with their changes reach the bus, in order.

Each event row is written in the same transaction as the change it reports.
The relay publishes pending rows oldest first and marks them sent only once
the bus holds them; while the bus is unreachable they wait, and every one is
delivered when it is back. Kicked after each change and on a timer.
Published events stay ``keep`` seconds for ``/events`` replay, then go.

Of instances sharing a store one leads the relay. A change made through
another is announced to it (``outbox.waiting``), so its events go out at
once rather than at the leader's next tick, as on a single instance.
"""

from __future__ import annotations

import uuid
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from uploadd.events import topics
from uploadd.events.bus import IEventBus
from uploadd.store.interface import Event, IMetadataStore

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
    #: Published events are kept this long, for /events clients coming back
    #: with Last-Event-ID; the leader deletes older ones once a minute.
    keep: float = 86400.0
    _pruned_at: float = 0.0
    _loop: LoopingCall | None = None
    _running: bool = False
    _again: bool = False
    # A change wrote events since the last pass: tell the leader, if not here.
    _changed: bool = False
    delivered: int = 0
    #: This relay's name in its announcements, to know its own when heard.
    _me: str = attrs.field(factory=lambda: uuid.uuid4().hex)

    def attach(self) -> None:
        """Hear of changes made through other instances."""
        self._bus.hear(topics.OUTBOX_WAITING, self.heard)

    def start(self) -> None:
        self._loop = LoopingCall(self.poll)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def kick(self, *ignored: Any) -> None:
        """A change wrote events: publish what waits, now (or right after the
        pass under way), or have the instance that leads the relay do it."""
        self._changed = True
        self.poll()

    async def heard(self, event: Event) -> None:
        """Another instance wrote events: relay them if leading here."""
        if event.payload["origin"] != self._me:
            self.poll()

    def poll(self) -> None:
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
            self.poll()

    async def relay(self) -> int:
        """Publish pending events in order until none wait or the bus fails
        (on the instance that leads the relay; the others leave it to it)."""
        sent = 0
        changed, self._changed = self._changed, False
        if not await self._store.leads(RELAY):
            if changed:
                self._tell_leader()
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
        now = self._clock.seconds()
        if now - self._pruned_at >= 60.0:
            self._pruned_at = now
            pruned = await self._store.prune_events(now - self.keep)
            if pruned:
                log.info("forgot {count} published events", count=pruned)
        return sent

    def _tell_leader(self) -> None:
        waiting = Event(topics.OUTBOX_WAITING, {"origin": self._me}, None)
        self._bus.announce(waiting).addErrback(
            lambda f: log.info(
                "could not tell the relay's leader of new events: {why}",
                why=f.getErrorMessage(),
            )
        )
