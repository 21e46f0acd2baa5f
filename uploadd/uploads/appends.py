"""Appends: bodies that continue an upload's bytes in order from its offset.

A protocol adapter turns its request into an :class:`AppendAsk` and asks
:func:`begin_append` for an :class:`Append`: the upload's one writer (a
second is Busy), admitted on the terms of :func:`rules.admit_append`, with
the data file its body streams into. When the body is durable the adapter
calls :meth:`Append.land`; when it breaks off, :meth:`Append.aborted`, and
while a long one streams, :meth:`Append.checkpoint`. Which bytes an
interrupted body keeps, and when an upload is complete, is decided here.

A body may come with a :class:`BodyCheck` (for itself) and a
:class:`ReprCheck` (for the whole file). The whole-file check is verified by
the request that completes the upload; one stated earlier is kept on the
upload's record until then (a later one replaces it). A mismatch of either
discards the bytes of that request alone: the offset stays where it was.
"""

from __future__ import annotations

import attrs
from twisted.logger import Logger

from uploadd.auth.tokens import Principal
from uploadd.errors import ChecksumMismatch
from uploadd.ingest.blob import BlobFile, Digest, Hashes
from uploadd.store.interface import UploadRecord
from uploadd.uploads import rules
from uploadd.uploads.checks import KEPT, BodyCheck, ReprCheck
from uploadd.uploads.resumable import Finished, Resumable
from uploadd.uploads.rules import AppendAsk, AppendTerms
from uploadd.uploads.writers import Writer

__all__ = [
    "Append",
    "BodyCheck",
    "ReprCheck",
    "appendable",
    "begin_append",
]

log = Logger()


async def appendable(
    uploads: Resumable, owner: Principal, upload_id: str
) -> UploadRecord:
    """The upload, if ``owner`` may append to it: else NotFound, Gone, or
    Forbidden for a final upload."""
    record = await uploads.load(owner, upload_id)
    rules.check_appendable(record)
    return record


def begin_append(
    uploads: Resumable,
    record: UploadRecord,
    ask: AppendAsk,
    limit: int,
    check: BodyCheck | None = None,
    created: bool = False,
    whole: ReprCheck | None = None,
    writer: Writer | None = None,
) -> Append:
    """Admit a body appending to ``record`` as its one writer (else Busy;
    ``writer`` when the caller claimed it already), on the terms of
    :func:`rules.admit_append` under the size ``limit``. ``created``: the
    same request made the upload; ``check`` vouches for this body,
    ``whole`` for the whole file."""
    if writer is None:
        writer = uploads.writers.claim(record.id)
    try:
        terms = rules.admit_append(record, ask, limit)
        record = attrs.evolve(record, length=terms.length)
        target = uploads.data(
            record.id,
            record.received,
            uploads.running(record.id, record.received),
            check.hasher if check is not None else None,
        )
    except BaseException:
        writer.release()
        raise
    return Append(uploads, record, terms, target, writer, check, created, whole)


@attrs.define(eq=False)
class Append:
    """One body continuing an upload, from its admission until it lands or
    is aborted. ``created``: the same request made the upload, so nobody
    else knows its id and it goes if the body fails. With a ``check`` the
    body counts whole or not at all; ``whole`` vouches for the file this
    upload becomes."""

    _uploads: Resumable
    record: UploadRecord
    terms: AppendTerms
    target: BlobFile
    writer: Writer
    check: BodyCheck | None = None
    created: bool = False
    whole: ReprCheck | None = None

    @property
    def checkpoints(self) -> bool:
        """Whether the durable part of a long body may be recorded while it
        streams (not under a checksum, nor for an upload nobody can resume)."""
        return not self.created and self.check is None

    async def land(self, owner: Principal, digest: Digest) -> Finished:
        """The body is durable: check it against its checksum, advance the
        offset, and finish the upload when every byte is here, once the
        whole file is checked against the digest it was vouched for with
        (this request's, or one an earlier request stated). A mismatch
        discards this body. The writer is released however this ends."""
        uploads = self._uploads
        try:
            record = self.record
            if self.check is not None:
                try:
                    self.check.verify(digest)
                except ChecksumMismatch:
                    await uploads.rewind(record)
                    raise
            received = record.received + digest.size
            record = attrs.evolve(
                record,
                received=received,
                length=received if self.terms.ends_upload else record.length,
                expires_at=uploads.expiry(),
                metadata=self._keeping(record.metadata),
            )
            if not rules.finishes(record, self.terms):
                uploads.keep_running(record.id, self.target.hashes)
                await uploads.save(record)
                # Kept, but the length it said it ended at is not reached.
                rules.check_said_length(record, self.terms)
                return record, None
            whole = self.whole or ReprCheck.kept_in(record.metadata)
            # The hashes before this body, back in place if the file fails.
            before = uploads.running(record.id, self.record.received) if whole else None
            uploads.keep_running(record.id, self.target.hashes)
            sums = await uploads.digest(record, received)
            if whole is not None:
                try:
                    await uploads.verify_whole(record, sums, whole)
                except ChecksumMismatch:
                    await self._discard(before)
                    raise
            await uploads.save(record)
            return await uploads.finish(owner, record, sums)
        except Exception:
            if self.created:
                await uploads.terminate(self.record, "failed")
            raise
        finally:
            self.writer.release()

    async def refuse(self) -> None:
        """The body arrived but will not count (its protocol refuses it):
        its bytes go and the upload stays as it was; the writer is released."""
        uploads = self._uploads
        try:
            await self._discard(uploads.running(self.record.id, self.record.received))
        finally:
            self.writer.release()

    def _keeping(self, metadata: dict[str, str]) -> dict[str, str]:
        """``metadata`` with this request's whole-file check kept for the
        request that completes the upload."""
        if self.whole is None:
            return metadata
        return {**metadata, KEPT: self.whole.kept()}

    async def _discard(self, before: Hashes | None) -> None:
        """Undo this body: its bytes, the running hashes, and the offset a
        checkpoint may have recorded while it streamed."""
        uploads = self._uploads
        await uploads.rewind(self.record)
        uploads.keep_running(self.record.id, before)
        if self.checkpoints:
            await uploads.save(attrs.evolve(self.record, expires_at=uploads.expiry()))

    async def checkpoint(self, written: int) -> None:
        """``written`` bytes of the body still streaming are durable: record
        them (:meth:`land` or :meth:`aborted` follows)."""
        uploads = self._uploads
        await uploads.save(
            attrs.evolve(
                self.record,
                received=self.record.received + written,
                expires_at=uploads.expiry(),
            )
        )

    async def aborted(self, written: int) -> None:
        """The body broke off after ``written`` durable bytes: they are kept,
        unless a checksum vouched for the whole body (which cannot be checked
        now) or nobody knows the upload. Then the next writer may come."""
        uploads = self._uploads
        try:
            if self.created:
                await uploads.terminate(self.record, "failed")
            elif self.check is not None:
                await uploads.rewind(self.record)
            else:
                # The two hash lanes may have stopped at different bytes.
                uploads.keep_running(self.record.id, None)
                if written or self.whole is not None:
                    self.record = attrs.evolve(
                        self.record,
                        received=self.record.received + written,
                        expires_at=uploads.expiry(),
                        metadata=self._keeping(self.record.metadata),
                    )
                    await uploads.save(self.record)
                    log.info(
                        "upload {upload_id} interrupted at {offset}",
                        upload_id=self.record.id,
                        offset=self.record.received,
                    )
        except Exception:
            log.failure("recording an interrupted body failed")
        finally:
            self.writer.release()
