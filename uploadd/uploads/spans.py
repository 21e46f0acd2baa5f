"""Spans: bodies that fill ``[start, end)`` of an upload, in any order and
at once, and the completion that checks every byte arrived.

A protocol adapter turns its request into a :class:`SpanAsk` and asks
:func:`begin_span` (an existing upload) or :func:`create_with_span` (a new
one) for a :class:`SpanWrite`: the span reserved against overlapping ones
still arriving, admitted by :func:`rules.admit_span`, with the data file its
body streams into. Then :meth:`SpanWrite.land`, :meth:`SpanWrite.aborted` or
:meth:`SpanWrite.checkpoint`, as for appends; :func:`complete` ends it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.logger import Logger

from uploadd.auth.tokens import Principal
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.store.interface import UploadRecord
from uploadd.uploads import rules
from uploadd.uploads.ranges import covered_prefix
from uploadd.uploads.resumable import Finished, Resumable
from uploadd.uploads.rules import SpanAsk

log = Logger()


async def create_with_span(
    uploads: Resumable,
    owner: Principal,
    protocol: str,
    ask: SpanAsk,
    limit: int,
    base: int = 0,
) -> SpanWrite:
    """A new upload of ``ask.total`` bytes (None: the size of this body,
    at most ``limit``) and the span its first body fills. ``base``: 1 for a
    client that numbers bytes from 1."""
    rules.check_length(ask.total, limit)
    rules.check_span(ask)
    record = await uploads.create(owner, protocol, ask.total, {}, base=base)
    return begin_span(uploads, record, ask, limit, created=True)


def begin_span(
    uploads: Resumable,
    record: UploadRecord,
    ask: SpanAsk,
    limit: int,
    created: bool = False,
) -> SpanWrite:
    """Admit a body filling ``ask``'s span of ``record`` (an open-ended one
    reaches to ``limit``), reserved against overlapping ones (Conflict)."""
    rules.admit_span(record, ask)
    end = ask.end if ask.end is not None else limit
    release = uploads.writers.reserve(record.id, ask.start, end)
    try:
        # Running hashes only when this span continues exactly where the
        # in-order bytes end and nothing else arrives alongside.
        in_order = (
            covered_prefix(record.ranges) == ask.start
            and uploads.writers.spans(record.id) <= 1
        )
        hashes = uploads.running(record.id, ask.start) if in_order else None
        target = uploads.data(record.id, ask.start, hashes)
    except BaseException:
        release()
        raise
    return SpanWrite(uploads, record, ask, target, release, created)


@attrs.define(eq=False)
class SpanWrite:
    """One body filling a span of an upload, until it lands or is aborted.
    ``created``: the same request made the upload, so nobody else knows its
    id and it goes if the body fails."""

    _uploads: Resumable
    record: UploadRecord
    ask: SpanAsk
    target: BlobFile
    _release: Callable[[], None]
    created: bool = False

    @property
    def checkpoints(self) -> bool:
        """Whether the durable part of a long body may be recorded while it
        streams (not for an upload nobody can resume)."""
        return not self.created

    async def land(self, digest: Digest, metadata: dict[str, str]) -> UploadRecord:
        """The body is durable: it must fill the span it stated; its bytes,
        ``metadata`` and (for an open-ended body) the upload's length join
        the record. The span is released however this ends."""
        try:
            rules.check_span_filled(self.ask, digest.size)
            return await self._uploads.cover(
                self.record.id,
                self.ask.start,
                self.target,
                digest,
                metadata=metadata,
                length=digest.size if self.ask.end is None else None,
            )
        except Exception:
            if self.created:
                await self._uploads.terminate(self.record, "failed")
            raise
        finally:
            self._release()

    async def checkpoint(self, written: int) -> None:
        """``written`` bytes of the body still streaming are durable."""
        digest = Digest(written, "", "")
        await self._uploads.cover(self.record.id, self.ask.start, None, digest)

    async def aborted(self, written: int) -> None:
        """A broken body still covers what reached disk; an upload nobody
        knows the id of goes."""
        try:
            if self.created:
                await self._uploads.terminate(self.record, "failed")
            elif written:
                digest = Digest(written, "", "")
                await self._uploads.cover(
                    self.record.id, self.ask.start, self.target, digest
                )
        except Exception:
            log.failure("recording an interrupted chunk failed")
        finally:
            self._release()


async def complete(
    uploads: Resumable,
    owner: Principal,
    record: UploadRecord,
    md5: str | None = None,
    created: bool = False,
) -> Finished:
    """The client says every span is here: check that it is, and that the
    whole has the ``md5`` it gave, then finish. A complete upload stays as it
    is. ``created``: nobody knows this upload's id, so it goes if it cannot
    finish."""
    if record.state == rules.COMPLETE:
        return record, None
    try:
        rules.check_covered(record)
        digest = await uploads.digest(record, record.length or 0)
        rules.check_md5(md5, digest.md5)
        return await uploads.finish(owner, record, digest)
    except Exception:
        if created:
            await uploads.terminate(record, "failed")
        raise
