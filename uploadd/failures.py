"""Recent failures of background work (replication, transcodes, webhooks),
kept in memory for the admin console; the log has every one of them.

The work fails on whichever instance did it, and the console may be asked of
any: each failure is announced on the bus and every instance's log keeps the
ones it hears beside its own (a console shows the cluster's failures since
its instance started). With the in-process bus only this log hears its own
announcements, and knows them already.
"""

from __future__ import annotations

import bisect
import uuid
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from uploadd.events import topics
from uploadd.events.bus import IEventBus
from uploadd.store.interface import Event

log = Logger()


@attrs.define
class FailureLog:
    _clock: IReactorTime
    limit: int = 100
    entries: list[dict[str, Any]] = attrs.field(factory=list)
    _bus: IEventBus | None = None
    #: This log's name in its announcements, to know its own when heard.
    _me: str = attrs.field(factory=lambda: uuid.uuid4().hex)

    def attach(self, bus: IEventBus) -> None:
        """Announce failures on ``bus`` and keep those of other instances."""
        self._bus = bus
        bus.hear(topics.WORK_FAILED, self.heard)

    def add(self, kind: str, reason: str, **details: Any) -> None:
        entry = {"at": self._clock.seconds(), "kind": kind, "reason": reason, **details}
        self._keep(entry)
        if self._bus is not None:
            news = Event(
                topics.WORK_FAILED,
                {"origin": self._me, "failure": entry},
                None,
                entry["at"],
            )
            self._bus.announce(news).addErrback(
                lambda f: log.info(
                    "a {kind} failure not announced: {why}",
                    kind=kind,
                    why=f.getErrorMessage(),
                )
            )

    async def heard(self, event: Event) -> None:
        """Another instance's failure (this log's own are kept already)."""
        if event.payload["origin"] != self._me:
            self._keep(dict(event.payload["failure"]))

    def _keep(self, entry: dict[str, Any]) -> None:
        """In time order (another instance's may come late), the newest
        ``limit`` only."""
        bisect.insort(self.entries, entry, key=lambda e: e["at"])
        del self.entries[: -self.limit]

    def recent(self, count: int = 20) -> list[dict[str, Any]]:
        """The newest ``count``, newest first."""
        return self.entries[-count:][::-1]
