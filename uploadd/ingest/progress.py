"""Upload progress for clients that cannot measure it (old browsers, iframes).

A client names its upload with ``X-Progress-ID`` (or ``?UploadKey=``); the
board records received and expected bytes while the body streams and keeps the
outcome for ``ttl`` seconds after it ends.

Behind a load balancer the body streams into one instance while the client
asks another, so every board announces its uploads on the bus (when one
starts, at most every ``interval`` seconds while it moves, and when it ends)
and keeps what it hears of the others' beside its own. The bus, not the
shared store: progress is many small updates that nobody wants once ``ttl``
has passed. In PostgreSQL it would be a write per upload several times a
second, rows to sweep and a schema to change, for a question only a client
polling ``/progress`` asks, and an instance's death would leave rows saying
"uploading" for ever. The bus already reaches every instance (live streams
ride it the same way); an announcement lost is an update missed, made good
by the next, and the last one is always sent. What is heard is forgotten
``ttl`` after its last word, so an upload whose instance died goes too. With
the in-process bus the only hearer is this board, which knows its own
uploads already: nothing changes.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from uploadd import errors
from uploadd.events import topics
from uploadd.events.bus import IEventBus
from uploadd.store.interface import Event

log = Logger()

_KEY = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise errors.Invalid(
            "a progress key is 1 to 128 letters, digits or . _ ~ -", key=key[:140]
        )
    return key


@attrs.define
class Progress:
    key: str
    owner_id: int
    expected: int | None
    started_at: float
    updated_at: float
    received: int = 0
    state: str = "uploading"
    file_id: str | None = None
    error: str | None = None
    _expiry: IDelayedCall | None = None
    # Announcements of it so far, the time of the last, and the one held
    # back until ``interval`` has passed since.
    _told: int = 0
    _told_at: float = float("-inf")
    _held: IDelayedCall | None = None

    def document(self) -> dict[str, Any]:
        percent = None
        if self.expected:
            percent = round(
                100.0 * min(self.received, self.expected) / self.expected, 1
            )
        elif self.state == "done":
            percent = 100.0
        return {
            "key": self.key,
            "state": self.state,
            "received": self.received,
            "expected": self.expected,
            "percent": percent,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "file_id": self.file_id,
            "error": self.error,
        }


@attrs.define
class _Heard:
    """Another instance's upload, as its latest announcement told it."""

    origin: str
    told: int
    entry: Progress
    expiry: IDelayedCall


@attrs.define
class ProgressBoard:
    _clock: IReactorTime
    ttl: float
    #: Least time between two announcements of one upload's progress.
    interval: float = 1.0
    _entries: dict[str, Progress] = attrs.field(factory=dict)
    _heard: dict[str, _Heard] = attrs.field(factory=dict)
    _bus: IEventBus | None = None
    #: This board's name in its announcements, to know its own when heard.
    _me: str = attrs.field(factory=lambda: uuid.uuid4().hex)

    def attach(self, bus: IEventBus) -> None:
        """Announce this board's uploads on ``bus`` and hear the others'."""
        self._bus = bus
        bus.hear(topics.UPLOAD_PROGRESS, self.heard)

    def start(self, key: str, owner_id: int, expected: int | None) -> Progress:
        previous = self._entries.get(key)
        if previous is not None:
            _cancel(previous._expiry)
            _cancel(previous._held)
        now = self._clock.seconds()
        entry = Progress(key, owner_id, expected, started_at=now, updated_at=now)
        self._entries[key] = entry
        self._announce(entry)
        return entry

    def advance(self, entry: Progress, received: int) -> None:
        entry.received = received
        entry.updated_at = self._clock.seconds()
        if entry._held is not None:
            return  # the announcement due carries the latest count
        wait = entry._told_at + self.interval - entry.updated_at
        if wait <= 0:
            self._announce(entry)
        else:
            entry._held = self._clock.callLater(wait, self._announce, entry)

    def get(self, key: str, owner_id: int) -> Progress | None:
        """The upload ``key`` of ``owner_id``, received here or by another
        instance (the one started last, if both)."""
        heard = self._heard.get(key)
        found = [
            entry
            for entry in (self._entries.get(key), heard.entry if heard else None)
            if entry is not None and entry.owner_id == owner_id
        ]
        return max(found, key=lambda entry: entry.started_at, default=None)

    def end(self, entry: Progress, file_id: str | None, error: str | None) -> None:
        """Record the outcome; the entry disappears ``ttl`` seconds later."""
        if entry.state != "uploading":
            return
        entry.state = "failed" if error else "done"
        entry.file_id, entry.error = file_id, error
        entry.updated_at = self._clock.seconds()
        entry._expiry = self._clock.callLater(self.ttl, self._expire, entry)
        self._announce(entry)

    def _expire(self, entry: Progress) -> None:
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]

    def _announce(self, entry: Progress) -> None:
        _cancel(entry._held)
        entry._held = None
        if self._bus is None:
            return
        entry._told += 1
        entry._told_at = self._clock.seconds()
        news = {
            "origin": self._me,
            "told": entry._told,
            "owner_id": entry.owner_id,
            **entry.document(),
        }
        announced = Event(topics.UPLOAD_PROGRESS, news, entry.owner_id, entry._told_at)
        self._bus.announce(announced).addErrback(
            lambda f: log.debug(
                "progress of {key} not announced: {why}",
                key=entry.key,
                why=f.getErrorMessage(),
            )
        )

    async def heard(self, event: Event) -> None:
        """Another instance's announcement (this board's own are known)."""
        news = event.payload
        origin, told, key = news["origin"], news["told"], news["key"]
        if origin == self._me:
            return
        known = self._heard.get(key)
        if known is not None:
            if known.origin == origin and known.told >= told:
                return  # older news than what is known
            if known.origin != origin and known.entry.started_at > news["started_at"]:
                return  # an earlier upload under the same key
            _cancel(known.expiry)
        entry = Progress(
            key,
            news["owner_id"],
            news["expected"],
            news["started_at"],
            news["updated_at"],
            news["received"],
            news["state"],
            news["file_id"],
            news["error"],
        )
        expiry = self._clock.callLater(self.ttl, self._forget, key, entry)
        self._heard[key] = _Heard(origin, told, entry, expiry)

    def _forget(self, key: str, entry: Progress) -> None:
        heard = self._heard.get(key)
        if heard is not None and heard.entry is entry:
            del self._heard[key]


def _cancel(call: IDelayedCall | None) -> None:
    if call is not None and call.active():
        call.cancel()
