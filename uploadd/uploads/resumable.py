"""Resumable uploads, whatever the protocol: state, exclusion, hashes, the end.

An upload's bytes live in ``uploads/<id>.bin``; its record says how many of
them are durable (``received``, advanced only after an fsync) or which spans
are (``ranges``). Appends (tus) take the upload's lock, so one PATCH writes
at a time; spans (Content-Range) reserve ``[start, end)`` so parallel chunks
never overlap. While bytes arrive in order the file's sha256 and md5 run
along; after a restart or out-of-order chunks they are computed once at the
end. Completion goes through the Library like any other upload.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from noded.threads import Runner
from uploadd.api.access import owned
from uploadd.api.problems import Problem, bad_request, not_found
from uploadd.auth.tokens import Principal
from uploadd.ingest.sink import BlobFile, Digest, Hashes
from uploadd.library import Library
from uploadd.renditions import parse_requested
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import FileRecord, IMetadataStore, UploadRecord
from uploadd.uploads.ranges import covered_prefix, merge, overlaps

log = Logger()

READ_SIZE = 1024 * 1024


def hash_file(path: Path) -> Hashes:
    """sha256 and md5 of a whole file in one read (runs on a thread)."""
    hashes = Hashes()
    with path.open("rb", buffering=0) as handle:
        while block := handle.read(READ_SIZE):
            hashes.sha256.update(block)
            hashes.md5.update(block)
            hashes.size += len(block)
    return hashes


def concatenate(sources: Sequence[Path], target: Path) -> int:
    """Append ``sources`` to ``target`` in the kernel (copy_file_range, which
    shares extents where the filesystem can); return the size. Thread-side."""
    size = 0
    with target.open("r+b") as out:
        out.truncate(0)
        for source in sources:
            with source.open("rb") as handle:
                left = os.fstat(handle.fileno()).st_size
                while left:
                    copied = os.copy_file_range(handle.fileno(), out.fileno(), left)
                    if copied == 0:
                        raise OSError(f"{source} ended early")
                    left -= copied
                    size += copied
        out.flush()
        os.fsync(out.fileno())
    return size


@attrs.define
class Lock:
    """One upload's append lock; ``release`` is idempotent."""

    _held: set[str]
    upload_id: str
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._held.discard(self.upload_id)


@attrs.define
class Resumable:
    _store: IMetadataStore
    _blobs: BlobStore
    _library: Library
    _run: Runner
    _clock: IReactorTime
    expire_after: float
    fsync: bool = True
    _locked: set[str] = attrs.field(factory=set)
    _spans: dict[str, list[tuple[int, int]]] = attrs.field(factory=dict)
    _hashes: dict[str, Hashes] = attrs.field(factory=dict)
    _record_locks: dict[str, DeferredLock] = attrs.field(factory=dict)
    # Open uploads as last stored: this process is the store's only writer,
    # so a PATCH need not read back what the previous one wrote.
    _records: dict[str, UploadRecord] = attrs.field(factory=dict)

    async def _get(self, upload_id: str) -> UploadRecord | None:
        cached = self._records.get(upload_id)
        if cached is not None:
            return cached
        record = await self._store.get_upload(upload_id)
        if record is not None and record.state == "open":
            self._records[upload_id] = record
        return record

    async def _put(self, record: UploadRecord) -> None:
        await self._store.save_upload(record)
        if record.state == "open":
            self._records[record.id] = record
        else:
            self._records.pop(record.id, None)

    # -- life cycle ----------------------------------------------------------

    def expiry(self) -> float:
        return self._clock.seconds() + self.expire_after

    async def create(
        self,
        owner: Principal,
        protocol: str,
        length: int | None,
        metadata: dict[str, str],
        concat: str | None = None,
        parts: tuple[str, ...] = (),
        base: int = 0,
    ) -> UploadRecord:
        if "renditions" in metadata:
            parse_requested(metadata["renditions"])  # a 400 now, not at the end
        upload_id = uuid.uuid4().hex
        await self._run(self._blobs.create_upload, upload_id)
        record = UploadRecord(
            id=upload_id,
            owner_id=owner.user_id,
            protocol=protocol,
            length=length,
            created_at=self._clock.seconds(),
            expires_at=self.expiry(),
            metadata=metadata,
            concat=concat,
            parts=parts,
            base=base,
        )
        try:
            await self._store.add_upload(record)
            self._records[upload_id] = record
        except BaseException:
            await self._run(self._blobs.remove_upload, upload_id)
            raise
        self._hashes[upload_id] = Hashes()
        log.info(
            "upload {upload_id} opened ({protocol}, {length} bytes) for {owner}",
            upload_id=upload_id,
            protocol=protocol,
            length=length,
            owner=owner.username,
        )
        return record

    async def load(self, owner: Principal, upload_id: str) -> UploadRecord:
        """The upload, if ``owner`` may touch it: else 404, or 410 once expired."""
        record = await self._get(upload_id)
        if record is None or owned(owner, record.owner_id, "upload"):
            raise not_found(f"no such upload: {upload_id}")
        if record.state == "expired" or (
            record.state == "open"
            and record.expires_at is not None
            and record.expires_at <= self._clock.seconds()
        ):
            raise Problem(410, f"upload {upload_id} expired and its bytes are gone")
        return record

    async def save(self, record: UploadRecord) -> None:
        await self._put(record)

    async def terminate(self, record: UploadRecord) -> None:
        # The bytes go first: on a full disk their room is what lets the
        # database record the deletion.
        await self._run(self._blobs.remove_upload, record.id)
        await self._store.delete_upload(record.id)
        self._records.pop(record.id, None)
        self._hashes.pop(record.id, None)
        log.info("upload {upload_id} terminated", upload_id=record.id)

    async def reconcile(self) -> tuple[int, int]:
        """At startup, make ``uploads/`` agree with the store: files no open
        (or complete partial) upload owns are removed, bytes past what an
        open upload recorded are cut. Returns (removed, cut)."""
        removed = cut = 0
        for upload_id, size in await self._run(self._blobs.upload_files):
            record = await self._store.get_upload(upload_id)
            keep = record is not None and (
                record.state == "open"
                or (record.state == "complete" and record.concat == "partial")
            )
            if record is None or not keep:
                await self._run(self._blobs.remove_upload, upload_id)
                removed += 1
                log.info(
                    "removed {upload_id}.bin: no upload owns it", upload_id=upload_id
                )
                continue
            recorded = max((end for _, end in record.ranges), default=record.received)
            if record.state == "complete" and record.length is not None:
                recorded = record.length
            if size > recorded:
                await self._run(self._blobs.truncate_upload, upload_id, recorded)
                cut += 1
                log.info(
                    "cut upload {upload_id} from {size} to its recorded {offset} bytes",
                    upload_id=upload_id,
                    size=size,
                    offset=recorded,
                )
        return removed, cut

    async def sweep(self) -> int:
        """Expire open uploads past their time and reclaim their disk."""
        expired = await self._store.expired_uploads(self._clock.seconds())
        for record in expired:
            if record.id in self._locked or self._spans.get(record.id):
                continue
            await self._run(self._blobs.remove_upload, record.id)
            await self._put(attrs.evolve(record, state="expired"))
            self._hashes.pop(record.id, None)
            log.info("upload {upload_id} expired", upload_id=record.id)
        return len(expired)

    # -- appending (tus) -----------------------------------------------------

    def lock(self, upload_id: str) -> Lock:
        if upload_id in self._locked:
            raise Problem(
                423,
                f"upload {upload_id} is receiving another PATCH; "
                "retry when it has ended (HEAD shows the offset)",
            )
        self._locked.add(upload_id)
        return Lock(self._locked, upload_id)

    def append_target(self, record: UploadRecord, check: Any = None) -> BlobFile:
        """The upload's file, open at its durable offset, with the running
        hashes when they reach exactly that far (a copy, in case this body
        is discarded)."""
        running = self._hashes.get(record.id)
        hashes = running.copy() if running and running.size == record.received else None
        return BlobFile(
            self._blobs.upload_path(record.id),
            self.fsync,
            offset=record.received,
            hashes=hashes,
            check=check,
        )

    async def appended(
        self, record: UploadRecord, target: BlobFile, digest: Digest
    ) -> UploadRecord:
        """``digest.size`` more bytes are durable after ``record.received``."""
        if target.hashes is not None:
            self._hashes[record.id] = target.hashes
        else:
            self._hashes.pop(record.id, None)
        record = attrs.evolve(
            record, received=record.received + digest.size, expires_at=self.expiry()
        )
        await self._put(record)
        return record

    async def checkpoint(self, record: UploadRecord, written: int) -> None:
        """``written`` bytes after ``record.received`` are durable while the
        body goes on: record them (``appended`` or ``interrupted`` follows)."""
        await self._put(
            attrs.evolve(
                record, received=record.received + written, expires_at=self.expiry()
            )
        )

    async def interrupted(self, record: UploadRecord, written: int) -> UploadRecord:
        """A body broke off after ``written`` durable bytes: keep them."""
        # The two hash lanes may have stopped at different bytes.
        self._hashes.pop(record.id, None)
        if not written:
            return record
        record = attrs.evolve(
            record, received=record.received + written, expires_at=self.expiry()
        )
        await self._put(record)
        log.info(
            "upload {upload_id} interrupted at {offset}",
            upload_id=record.id,
            offset=record.received,
        )
        return record

    async def rewind(self, record: UploadRecord) -> None:
        """Drop bytes past the durable offset (a body that failed its checksum)."""
        await self._run(self._blobs.truncate_upload, record.id, record.received)

    # -- spans (Content-Range) -----------------------------------------------

    def reserve(self, record: UploadRecord, start: int, end: int) -> Callable[[], None]:
        """Claim ``[start, end)`` against parallel chunks; 409 on overlap."""
        busy = self._spans.setdefault(record.id, [])
        if any(overlaps((start, end), span) for span in busy):
            raise Problem(
                409,
                f"bytes {start}-{end - 1} overlap a chunk still being received",
            )
        busy.append((start, end))

        def release() -> None:
            if (start, end) in busy:
                busy.remove((start, end))

        return release

    def span_target(self, record: UploadRecord, start: int) -> BlobFile:
        """The upload's file at ``start``; running hashes only when this chunk
        continues exactly where the in-order bytes end."""
        running = self._hashes.get(record.id)
        in_order = (
            running is not None
            and running.size == start
            and covered_prefix(record.ranges) == start
            and len(self._spans.get(record.id, ())) <= 1
        )
        return BlobFile(
            self._blobs.upload_path(record.id),
            self.fsync,
            offset=start,
            hashes=running.copy() if in_order and running else None,
        )

    async def covered(
        self,
        upload_id: str,
        start: int,
        target: BlobFile | None,
        digest: Digest,
        metadata: dict[str, str] | None = None,
        length: int | None = None,
    ) -> UploadRecord:
        """``[start, start + size)`` is durable: merge it (and any ``metadata``
        or a now-known ``length``) into the record. Chunks finishing together
        update the record one at a time. Without ``target`` (a checkpoint of
        a chunk still arriving) the running hashes are left as they are."""
        lock = self._record_locks.setdefault(upload_id, DeferredLock())
        await lock.acquire()
        try:
            record = await self._get(upload_id)
            if record is None:
                raise not_found(f"no such upload: {upload_id}")
            ranges = merge((*record.ranges, (start, start + digest.size)))
            hashes = target.hashes if target is not None else None
            if hashes is not None and hashes.size == covered_prefix(ranges):
                self._hashes[upload_id] = hashes
            elif hashes is not None:
                self._hashes.pop(upload_id, None)
            record = attrs.evolve(
                record,
                ranges=ranges,
                received=covered_prefix(ranges),
                expires_at=self.expiry(),
                metadata={**record.metadata, **(metadata or {})},
                length=record.length if length is None else length,
            )
            await self._put(record)
            return record
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._record_locks.pop(upload_id, None)

    # -- the end -------------------------------------------------------------

    async def digest(self, record: UploadRecord, length: int) -> Digest:
        """sha256 and md5 of the upload's ``length`` bytes: the running ones
        when they cover it all, else one read of the file."""
        await self._run(self._blobs.truncate_upload, record.id, length)
        running = self._hashes.get(record.id)
        if running is not None and running.size == length:
            return Digest(length, running.sha256.hexdigest(), running.md5.hexdigest())
        hashes: Hashes = await self._run(hash_file, self._blobs.upload_path(record.id))
        return Digest(length, hashes.sha256.hexdigest(), hashes.md5.hexdigest())

    async def finish(
        self, owner: Principal, record: UploadRecord, digest: Digest
    ) -> tuple[UploadRecord, FileRecord | None]:
        """Every byte is here: a partial upload is marked complete; any other
        becomes a file with the upload's id."""
        length = record.length if record.length is not None else record.received
        if record.concat == "partial":
            record = attrs.evolve(record, state="complete", received=length)
            await self._put(record)
            return record, None
        metadata = record.metadata
        stored = await self._library.store(
            owner,
            record.id,
            digest,
            metadata.get("filename") or metadata.get("name") or record.id,
            metadata.get("filetype") or metadata.get("content_type"),
            metadata.get("parent") or None,
            staged=self._blobs.upload_path(record.id),
            renditions=metadata.get("renditions"),
        )
        record = attrs.evolve(
            record, state="complete", received=length, file_id=stored.id
        )
        await self._put(record)
        self._hashes.pop(record.id, None)
        return record, stored

    async def assemble(
        self, owner: Principal, part_ids: Sequence[str], metadata: dict[str, str]
    ) -> tuple[UploadRecord, FileRecord | None]:
        """A final upload from complete partial ones, copied in the kernel."""
        parts = [await self.load(owner, part) for part in part_ids]
        for part in parts:
            if part.concat != "partial":
                raise bad_request(f"upload {part.id} is not a partial upload")
            if part.state != "complete":
                raise Problem(409, f"partial upload {part.id} is not complete yet")
        length = sum(part.length or part.received for part in parts)
        record = await self.create(
            owner, "tus", length, metadata, concat="final", parts=tuple(part_ids)
        )
        sources = [self._blobs.upload_path(part.id) for part in parts]
        await self._run(concatenate, sources, self._blobs.upload_path(record.id))
        self._hashes.pop(record.id, None)
        digest = await self.digest(record, length)
        record, stored = await self.finish(owner, record, digest)
        for part in parts:
            await self._run(self._blobs.remove_upload, part.id)
        return record, stored
