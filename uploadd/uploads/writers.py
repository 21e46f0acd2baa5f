"""Who is writing which upload right now: one appender per upload, or spans
that do not overlap.

An append continues the upload's bytes in order, so only one runs at a time.
What a newer request meets while an older one streams depends on its
protocol: tus refuses it as Busy (:meth:`Writers.claim`; the upload's
offset shows how far the first got); the IETF resumable-upload draft ends
the older one, waits until what it carried is recorded, and goes on
(:meth:`Writers.take_over`), because a client only sends a new request once
it believes the old one dead. Spans name their own bytes, so any number may
stream at once as long as none overlaps another still arriving (Conflict).
The sweeper leaves an upload alone while anyone writes it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.internet.defer import Deferred, succeed

from uploadd.errors import Busy, Conflict
from uploadd.uploads.ranges import overlaps


@attrs.define(eq=False)
class Writer:
    """One appender's claim on its upload; ``release`` is idempotent.

    The body it streams says how it can be ended (:meth:`stoppable`); a
    newer request asks it to end (:meth:`stop`) and waits for the release,
    which comes once what reached disk is recorded."""

    _held: dict[str, Writer]
    upload_id: str
    released: bool = False
    _stop: Callable[[], None] | None = None
    _stopping: bool = False
    _waiters: list[Deferred[None]] = attrs.field(factory=list)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        if self._held.get(self.upload_id) is self:
            del self._held[self.upload_id]
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def stoppable(self, stop: Callable[[], None]) -> None:
        """``stop()`` ends the body this writer streams (its bytes on disk
        are then recorded and the writer released)."""
        self._stop = stop
        if self._stopping:
            stop()

    def stop(self) -> Deferred[None]:
        """End the body (now, or as soon as it can be ended); fires once
        the writer is released."""
        if self.released:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        if not self._stopping:
            self._stopping = True
            if self._stop is not None:
                self._stop()
        return waiter


@attrs.define
class Writers:
    _appending: dict[str, Writer] = attrs.field(factory=dict)
    _spans: dict[str, list[tuple[int, int]]] = attrs.field(factory=dict)

    def claim(self, upload_id: str) -> Writer:
        """The upload's one appender, or Busy while another holds it."""
        if upload_id in self._appending:
            raise Busy(
                f"upload {upload_id} is receiving another body; retry when it "
                "has ended (the upload's offset shows how far it got)"
            )
        writer = Writer(self._appending, upload_id)
        self._appending[upload_id] = writer
        return writer

    async def quiet(self, upload_id: str) -> None:
        """End the body appending to the upload, if any, and wait until
        what it carried is recorded."""
        while (holder := self._appending.get(upload_id)) is not None:
            await holder.stop()

    async def take_over(self, upload_id: str) -> Writer:
        """The upload's one appender, once any older one has been ended."""
        await self.quiet(upload_id)
        return self.claim(upload_id)

    def reserve(self, upload_id: str, start: int, end: int) -> Callable[[], None]:
        """Claim ``[start, end)`` of the upload against spans still arriving
        (Conflict on overlap); returns the idempotent release."""
        busy = self._spans.setdefault(upload_id, [])
        if any(overlaps((start, end), span) for span in busy):
            raise Conflict(
                f"bytes {start}-{end - 1} overlap a chunk still being received"
            )
        busy.append((start, end))

        def release() -> None:
            if (start, end) in busy:
                busy.remove((start, end))
            if not busy and self._spans.get(upload_id) is busy:
                del self._spans[upload_id]

        return release

    def spans(self, upload_id: str) -> int:
        """How many spans of the upload are arriving now."""
        return len(self._spans.get(upload_id, ()))

    def busy(self, upload_id: str) -> bool:
        """Whether anyone writes the upload now."""
        return upload_id in self._appending or bool(self._spans.get(upload_id))
