"""Resumable uploads, whatever the protocol: their records, their bytes on
disk, who writes them now, their running hashes, their life and their end.

An upload's bytes live in ``uploads/<id>.bin``; its record says how many of
them are durable (``received``, advanced only after an fsync) or which spans
are (``ranges``). Bodies add to it in one of two ways, each in its module:
:mod:`~uploadd.uploads.appends` continue the bytes in order from the
upload's offset (tus; the IETF draft), one at a time;
:mod:`~uploadd.uploads.spans` fill ``[start, end)`` (Content-Range chunks),
any number at once as long as they do not overlap. The rules both obey are
in :mod:`~uploadd.uploads.rules`. While bytes arrive in order the file's
sha256 and md5 run along; after a restart or out-of-order chunks they are
computed once at the end. Completion goes through the Library like any
other upload. Each upload is counted once when it begins and once when it
ends (stored, partial, expired or terminated), whatever requests carried it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import attrs
from twisted.internet.defer import DeferredLock
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from noded.threads import Runner
from uploadd.auth.tokens import Principal
from uploadd.errors import ChecksumMismatch, Elsewhere, Gone, NotFound
from uploadd.ingest.blob import BlobFile, Digest, Hashes
from uploadd.library import Library
from uploadd.metrics import Metrics
from uploadd.renditions import parse_requested
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import FileRecord, IMetadataStore, UploadRecord
from uploadd.uploads import rules
from uploadd.uploads.checks import ReprCheck
from uploadd.uploads.data import concatenate, hash_file
from uploadd.uploads.ranges import covered_prefix, merge
from uploadd.uploads.writers import Writers

log = Logger()

#: An upload at its end, and the file it became (None for a partial upload).
Finished: TypeAlias = tuple[UploadRecord, FileRecord | None]


class PartSource(Protocol):
    """Where the bytes of a partial upload another instance holds come from."""

    async def pull(self, part: UploadRecord, destination: Path) -> None:
        """Copy the part's bytes to ``destination`` (a new file), whole."""

    async def drop(self, part: UploadRecord) -> None:
        """The part is joined: its holder may remove its bytes."""


@attrs.define
class Resumable:
    _store: IMetadataStore
    _blobs: BlobStore
    _library: Library
    _run: Runner
    _clock: IReactorTime
    expire_after: float
    fsync: bool = True
    #: This instance's name: where the bytes of the uploads it opens are.
    instance: str = ""
    #: Whether other instances share the store (and hold uploads of theirs).
    shared: bool = False
    #: Brings the bytes of parts other instances hold (None: one instance).
    parts: PartSource | None = None
    writers: Writers = attrs.field(factory=Writers)
    #: Every upload's md5 ([storage] digests), not only those whose protocol
    #: needs it (:data:`rules.MD5_PROTOCOLS`).
    every_md5: bool = attrs.field(default=False, kw_only=True)
    metrics: Metrics = attrs.field(factory=Metrics, kw_only=True)
    #: Heard when an upload ends without becoming a file (terminated or
    #: expired), after its bytes and record went: what a protocol made
    #: alongside it goes too (an S3 multipart upload's parts).
    on_ended: list[Callable[[UploadRecord], Awaitable[object]]] = attrs.field(
        factory=list, kw_only=True
    )
    _hashes: dict[str, Hashes] = attrs.field(factory=dict)
    _record_locks: dict[str, DeferredLock] = attrs.field(factory=dict)
    # Open uploads as last stored: only the instance holding an upload's
    # bytes writes its record, so a PATCH need not read back what the
    # previous one wrote.
    _records: dict[str, UploadRecord] = attrs.field(factory=dict)

    # -- records, data files, running hashes ---------------------------------

    async def current(self, upload_id: str) -> UploadRecord | None:
        """The upload's record as last stored."""
        cached = self._records.get(upload_id)
        if cached is not None:
            return cached
        record = await self._store.get_upload(upload_id)
        if record is not None and record.state == rules.OPEN and self.holds(record):
            self._records[upload_id] = record
        return record

    def holds(self, record: UploadRecord) -> bool:
        """Whether the upload's bytes are on this instance's disk: on a
        store no other instance shares, always (whatever name the instance
        had when it opened the upload)."""
        return not self.shared or record.holder in ("", self.instance)

    async def save(self, record: UploadRecord) -> None:
        """Store ``record`` (and keep it at hand while it is open)."""
        await self._store.save_upload(record)
        if record.state == rules.OPEN and self.holds(record):
            self._records[record.id] = record
        else:
            self._records.pop(record.id, None)

    def running(self, upload_id: str, size: int) -> Hashes | None:
        """A copy of the upload's running hashes if they reach exactly
        ``size`` bytes (a copy, in case the next body is discarded)."""
        hashes = self._hashes.get(upload_id)
        return hashes.copy() if hashes is not None and hashes.size == size else None

    def keep_running(self, upload_id: str, hashes: Hashes | None) -> None:
        """The upload's running hashes are now ``hashes`` (None: unknown, to
        be computed at the end)."""
        if hashes is None:
            self._hashes.pop(upload_id, None)
        else:
            self._hashes[upload_id] = hashes

    def data(
        self, upload_id: str, offset: int, hashes: Hashes | None, check: Any = None
    ) -> BlobFile:
        """The upload's data file, open for a body written from ``offset``."""
        return BlobFile(
            self._blobs.upload_path(upload_id),
            self.fsync,
            offset=offset,
            hashes=hashes,
            check=check,
        )

    async def rewind(self, record: UploadRecord) -> None:
        """Drop bytes past the durable offset (a body that failed its checksum)."""
        await self._run(self._blobs.truncate_upload, record.id, record.received)

    # -- life cycle ----------------------------------------------------------

    def expiry(self) -> float:
        """When an upload touched now expires."""
        return self._clock.seconds() + self.expire_after

    async def touch(self, record: UploadRecord) -> bool:
        """Keep an open upload alive from now, from any instance: its expiry
        alone changes in the store (the holder's other fields stay as it
        wrote them); False once it is not open."""
        self._records.pop(record.id, None)
        return await self._store.touch_upload(record.id, self.expiry())

    async def create(
        self,
        owner: Principal,
        protocol: str,
        length: int | None,
        metadata: dict[str, str],
        concat: str | None = None,
        parts: tuple[str, ...] = (),
        base: int = 0,
        own: Mapping[str, str] | None = None,
    ) -> UploadRecord:
        """A new open upload with the client's ``metadata`` and the
        server's ``own`` (keys starting with :data:`rules.RESERVED`)."""
        rules.check_metadata(metadata)
        if "renditions" in metadata:
            parse_requested(metadata["renditions"])  # refused now, not at the end
        if own and any(not key.startswith(rules.RESERVED) for key in own):
            raise ValueError(f"the server's own keys start with {rules.RESERVED!r}")
        metadata = {**metadata, **(own or {})}
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
            holder=self.instance,
        )
        try:
            await self._store.add_upload(record)
            self._records[upload_id] = record
        except BaseException:
            await self._run(self._blobs.remove_upload, upload_id)
            raise
        self._hashes[upload_id] = Hashes.fresh(self.wants_md5(protocol))
        self.metrics.uploads_started.labels(protocol).inc()
        log.info(
            "upload {upload_id} opened ({protocol}, {length} bytes) for {owner}",
            upload_id=upload_id,
            protocol=protocol,
            length=length,
            owner=owner.username,
        )
        return record

    async def load(
        self, owner: Principal, upload_id: str, anywhere: bool = False
    ) -> UploadRecord:
        """The upload, if ``owner`` may touch it: else NotFound, or Gone once
        expired or cancelled; Elsewhere while another instance holds its
        bytes (the request goes on there), unless ``anywhere``."""
        record = await self.current(upload_id)
        if record is None or not rules.visible_to(owner, record.owner_id):
            raise NotFound(f"no such upload: {upload_id}")
        if rules.has_expired(record, self._clock.seconds()):
            raise Gone(f"upload {upload_id} expired and its bytes are gone")
        if record.state == rules.CANCELLED:
            raise Gone(
                f"upload {upload_id} was cancelled: the instance holding its "
                f"bytes ({record.holder}) was retired; start it again"
            )
        if rules.keeps_bytes(record) and not self.holds(record) and not anywhere:
            raise Elsewhere(record.holder)
        return record

    async def file_of(self, record: UploadRecord) -> FileRecord | None:
        """The file a completed upload became, if it is still there."""
        if record.file_id is None:
            return None
        return await self._store.get_file(record.file_id)

    async def unfinished(self, owner: Principal) -> list[UploadRecord]:
        """``owner``'s uploads still to finish, oldest first, whichever
        instance holds their bytes (the store is shared): open ones not
        past their expiry, and complete partial ones no final upload has
        joined yet (but not those made as parts of another upload: that
        one is listed)."""
        now = self._clock.seconds()
        found = await self._store.uploads_of(owner.user_id)
        return [
            record
            for record in found
            if not rules.has_expired(record, now)
            and rules.PART_OF not in record.metadata
        ]

    async def terminate(
        self, record: UploadRecord, outcome: str = "terminated"
    ) -> None:
        """Forget the upload and its bytes; it ended with ``outcome``
        (``failed``: it broke before anyone learnt of it)."""
        # The bytes go first: on a full disk their room is what lets the
        # database record the deletion.
        await self._run(self._blobs.remove_upload, record.id)
        await self._store.delete_upload(record.id)
        self._records.pop(record.id, None)
        self._hashes.pop(record.id, None)
        self.metrics.upload_ended(record.protocol, outcome)
        log.info("upload {upload_id} terminated", upload_id=record.id)
        await self._ended(record)

    async def _ended(self, record: UploadRecord) -> None:
        for hook in self.on_ended:
            try:
                await hook(record)
            except Exception:
                log.failure(
                    "cleaning up after upload {upload_id} failed", upload_id=record.id
                )

    async def delete(self, owner: Principal, upload_id: str) -> None:
        """The client ends its upload: not while a body is appending (Busy)."""
        record = await self.load(owner, upload_id)
        writer = self.writers.claim(record.id)
        try:
            await self.terminate(record)
        finally:
            writer.release()

    async def reconcile(self) -> tuple[int, int]:
        """At startup, make ``uploads/`` agree with the store: files no open
        (or complete partial) upload owns are removed, bytes past what an
        open upload recorded are cut. Returns (removed, cut)."""
        removed = cut = 0
        for upload_id, size in await self._run(self._blobs.upload_files):
            record = await self._store.get_upload(upload_id)
            keep = (
                record is not None and self.holds(record) and rules.keeps_bytes(record)
            )
            if record is None or not keep:
                await self._run(self._blobs.remove_upload, upload_id)
                removed += 1
                log.info(
                    "removed {upload_id}.bin: no upload owns it", upload_id=upload_id
                )
                continue
            recorded = max((end for _, end in record.ranges), default=record.received)
            if record.state == rules.COMPLETE and record.length is not None:
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
        """Expire open uploads past their time and reclaim their disk; an
        upload someone is writing waits for the next sweep. Each instance
        sweeps the uploads whose bytes it holds."""
        expired = await self._store.expired_uploads(
            self._clock.seconds(), self.instance if self.shared else None
        )
        for record in expired:
            if self.writers.busy(record.id):
                continue
            await self._run(self._blobs.remove_upload, record.id)
            await self.save(attrs.evolve(record, state=rules.EXPIRED))
            self._hashes.pop(record.id, None)
            self.metrics.upload_ended(record.protocol, "expired")
            log.info("upload {upload_id} expired", upload_id=record.id)
            await self._ended(record)
        return len(expired)

    # -- spans arrived -----------------------------------------------------

    async def cover(
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
            record = await self.current(upload_id)
            if record is None:
                raise NotFound(f"no such upload: {upload_id}")
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
            await self.save(record)
            return record
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._record_locks.pop(upload_id, None)

    # -- the end -------------------------------------------------------------

    def wants_md5(self, protocol: str) -> bool:
        """Whether uploads of ``protocol`` compute their file's md5."""
        return self.every_md5 or protocol in rules.MD5_PROTOCOLS

    async def digest(self, record: UploadRecord, length: int) -> Digest:
        """sha256 (and md5 where wanted) of the upload's ``length`` bytes:
        the running ones when they cover it all, else one read of the file."""
        await self._run(self._blobs.truncate_upload, record.id, length)
        running = self._hashes.get(record.id)
        md5 = self.wants_md5(record.protocol)
        covered = running is not None and running.size == length
        if running is not None and covered and (running.md5 is not None or not md5):
            return running.digest()
        path = self._blobs.upload_path(record.id)
        hashes: Hashes = await self._run(hash_file, path, md5)
        return hashes.digest()

    async def verify_whole(
        self, record: UploadRecord, digest: Digest, check: ReprCheck
    ) -> None:
        """ChecksumMismatch unless the upload's bytes (whose sums
        :meth:`digest` gave) are the file ``check`` vouches for."""
        path = self._blobs.upload_path(record.id)
        await check.verify(digest.sha256, path, self._run)

    async def finish(
        self, owner: Principal, record: UploadRecord, digest: Digest
    ) -> Finished:
        """Every byte is here: a partial upload is marked complete; any other
        becomes a file with the upload's id."""
        length = record.length if record.length is not None else record.received
        if record.concat == rules.PARTIAL:
            record = attrs.evolve(record, state=rules.COMPLETE, received=length)
            await self.save(record)
            self.metrics.upload_ended(record.protocol, "partial")
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
            record, state=rules.COMPLETE, received=length, file_id=stored.id
        )
        await self.save(record)
        self._hashes.pop(record.id, None)
        took = self._clock.seconds() - record.created_at
        self.metrics.upload_ended(record.protocol, "stored", took)
        return record, stored

    async def assemble(
        self,
        owner: Principal,
        part_ids: Sequence[str],
        metadata: dict[str, str],
        whole: ReprCheck | None = None,
        into: UploadRecord | None = None,
    ) -> Finished:
        """A final upload from complete partial ones, copied in the kernel;
        parts whose bytes other instances hold are brought here first (a
        load balancer sends each part's creation anywhere), and dropped
        there once joined. A file that is not the one ``whole`` vouches
        for is ChecksumMismatch: the final upload goes, its parts stay.

        ``into`` is a final upload opened before its parts were known (an
        S3 multipart upload, whose parts name it, :data:`rules.PART_OF`):
        the parts become its file, with ``metadata`` added to its own; if
        that fails it stays open and empty for another try."""
        part_of = into.id if into is not None else None
        parts = [await self.load(owner, part, anywhere=True) for part in part_ids]
        for part in parts:
            rules.check_part(part, part_of)
        elsewhere = [part for part in parts if not self.holds(part)]
        if elsewhere and self.parts is None:
            raise Elsewhere(elsewhere[0].holder)
        try:
            for part in elsewhere:
                assert self.parts is not None
                await self.parts.pull(part, self._blobs.upload_path(part.id))
            length = sum(part.length or part.received for part in parts)
            if into is None:
                record = await self.create(
                    owner,
                    "tus",
                    length,
                    metadata,
                    concat=rules.FINAL,
                    parts=tuple(part_ids),
                )
            else:
                record = await self._reopen(into, length, metadata, part_ids)
            try:
                record, stored = await self._join(owner, record, parts, whole)
            except BaseException as failure:
                if into is not None:
                    await self._empty(attrs.evolve(into, holder=record.holder))
                elif isinstance(failure, ChecksumMismatch):
                    await self.terminate(record, "failed")
                raise
            # Joined: no longer an unfinished upload, and its bytes may go.
            for part in parts:
                await self.save(attrs.evolve(part, file_id=record.file_id))
        finally:
            for part in elsewhere:
                await self._run(self._blobs.remove_upload, part.id)
        for part in parts:
            if part in elsewhere:
                assert self.parts is not None
                await self.parts.drop(part)
            else:
                await self._run(self._blobs.remove_upload, part.id)
        return record, stored

    async def _reopen(
        self,
        into: UploadRecord,
        length: int,
        metadata: dict[str, str],
        part_ids: Sequence[str],
    ) -> UploadRecord:
        """``into`` about to take ``length`` bytes of its parts, here: its
        data file is made on this instance if another one opened it (it
        holds no bytes until now)."""
        holder = into.holder
        if not self.holds(into):
            await self._run(_create_anew, self._blobs.upload_path(into.id))
            holder = self.instance
        record = attrs.evolve(
            into,
            length=length,
            metadata={**into.metadata, **metadata},
            parts=tuple(part_ids),
            holder=holder,
        )
        await self.save(record)
        return record

    async def _empty(self, into: UploadRecord) -> None:
        """A join into ``into`` failed: it goes back to open and empty."""
        await self._run(_create_anew, self._blobs.upload_path(into.id))
        self._hashes.pop(into.id, None)
        await self.save(into)

    async def _join(
        self,
        owner: Principal,
        record: UploadRecord,
        parts: Sequence[UploadRecord],
        whole: ReprCheck | None,
    ) -> Finished:
        """Concatenate ``parts`` into ``record``'s data file and finish it."""
        length = record.length or 0
        sources = [self._blobs.upload_path(part.id) for part in parts]
        await self._run(concatenate, sources, self._blobs.upload_path(record.id))
        self._hashes.pop(record.id, None)
        digest = await self.digest(record, length)
        if whole is not None:
            await self.verify_whole(record, digest, whole)
        return await self.finish(owner, record, digest)


def _create_anew(path: Path) -> None:
    """An empty data file at ``path`` (emptied if one is there)."""
    path.open("wb").close()
