"""Recent failures of background work (replication, transcodes, webhooks),
kept in memory for the admin console; the log has every one of them."""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime


@attrs.define
class FailureLog:
    _clock: IReactorTime
    limit: int = 100
    entries: list[dict[str, Any]] = attrs.field(factory=list)

    def add(self, kind: str, reason: str, **details: Any) -> None:
        self.entries.append(
            {"at": self._clock.seconds(), "kind": kind, "reason": reason, **details}
        )
        del self.entries[: -self.limit]

    def recent(self, count: int = 20) -> list[dict[str, Any]]:
        """The newest ``count``, newest first."""
        return self.entries[-count:][::-1]
