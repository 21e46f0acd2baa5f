"""Who is writing which upload right now: one appender per upload, or spans
that do not overlap.

An append continues the upload's bytes in order, so only one runs at a time:
a second is refused as Busy while the first streams (its offset shows how
far the first got). Spans name their own bytes, so any number may stream at
once as long as none overlaps another still arriving (Conflict). The sweeper
leaves an upload alone while anyone writes it.

This is the one place the policy lives: a protocol whose new append ends an
older one still streaming (the IETF resumable-upload draft) would change
:meth:`Writers.claim` to interrupt the holder and wait for its release,
not its adapter.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from uploadd.errors import Busy, Conflict
from uploadd.uploads.ranges import overlaps


@attrs.define
class Writer:
    """One appender's claim on its upload; ``release`` is idempotent."""

    _held: set[str]
    upload_id: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._held.discard(self.upload_id)


@attrs.define
class Writers:
    _appending: set[str] = attrs.field(factory=set)
    _spans: dict[str, list[tuple[int, int]]] = attrs.field(factory=dict)

    def claim(self, upload_id: str) -> Writer:
        """The upload's one appender, or Busy while another holds it."""
        if upload_id in self._appending:
            raise Busy(
                f"upload {upload_id} is receiving another body; retry when it "
                "has ended (the upload's offset shows how far it got)"
            )
        self._appending.add(upload_id)
        return Writer(self._appending, upload_id)

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
