"""Upload progress for clients that cannot measure it (old browsers, iframes).

A client names its upload with ``X-Progress-ID`` (or ``?UploadKey=``); the
board records received and expected bytes while the body streams and keeps the
outcome for ``ttl`` seconds after it ends.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from uploadd import errors

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
class ProgressBoard:
    _clock: IReactorTime
    ttl: float
    _entries: dict[str, Progress] = attrs.field(factory=dict)

    def start(self, key: str, owner_id: int, expected: int | None) -> Progress:
        previous = self._entries.get(key)
        if previous is not None and previous._expiry is not None:
            previous._expiry.cancel()
        now = self._clock.seconds()
        entry = Progress(key, owner_id, expected, started_at=now, updated_at=now)
        self._entries[key] = entry
        return entry

    def advance(self, entry: Progress, received: int) -> None:
        entry.received = received
        entry.updated_at = self._clock.seconds()

    def get(self, key: str, owner_id: int) -> Progress | None:
        entry = self._entries.get(key)
        return entry if entry is not None and entry.owner_id == owner_id else None

    def end(self, entry: Progress, file_id: str | None, error: str | None) -> None:
        """Record the outcome; the entry disappears ``ttl`` seconds later."""
        if entry.state != "uploading":
            return
        entry.state = "failed" if error else "done"
        entry.file_id, entry.error = file_id, error
        entry.updated_at = self._clock.seconds()
        entry._expiry = self._clock.callLater(self.ttl, self._expire, entry)

    def _expire(self, entry: Progress) -> None:
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
