"""Multipart uploads: an object's bytes sent as numbered parts and joined
when the client completes the upload (S3's CreateMultipartUpload,
UploadPart, ListParts, ListMultipartUploads, AbortMultipartUpload and
CompleteMultipartUpload), on the resumable core.

A multipart upload is an unfinished upload of the core (protocol ``s3``): a
final upload, which takes no bytes of its own, whose metadata names its
bucket and key and keeps what the client said of the object. Each part is
a complete partial upload of its own, made with its body as tus's
creation-with-upload makes one and naming the upload it belongs to
(:data:`rules.PART_OF`); the store maps part numbers to them with their
size, md5 entity tag and checksum. A part number sent again replaces the
part, whose bytes go. Completion joins the listed parts in the kernel into
the multipart upload's own data file (:meth:`Resumable.assemble`), which
becomes the newest version of the key. Unfinished multipart uploads expire
as every upload does, and their parts go with them; their owner sees them
among their unfinished uploads, and never the parts.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from uploadd.auth.tokens import Principal
from uploadd.buckets.core import Buckets
from uploadd.buckets.parts import (
    PROTOCOL,
    MultipartUpload,
    PartsPage,
    UploadsPage,
    check_part_number,
    choose_parts,
    is_multipart,
    meta_json,
    meta_of,
    multipart_etag,
    page_of_uploads,
    shown,
)
from uploadd.buckets.records import ObjectInfo, ObjectMeta, object_info
from uploadd.buckets.rules import Reason, file_type, filename_of
from uploadd.errors import Invalid, NotFound
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.store.buckets import BucketRecord, PartRecord
from uploadd.store.interface import Conflict as StoreConflict
from uploadd.store.interface import IMetadataStore, UploadRecord
from uploadd.uploads import rules
from uploadd.uploads.appends import Append, BodyCheck, begin_append
from uploadd.uploads.resumable import Resumable
from uploadd.uploads.rules import AppendAsk

log = Logger()

#: The smallest a part but the last may be, by default (S3's).
MIN_PART = 5 * 1024 * 1024
#: The largest a part may be, by default (S3's).
MAX_PART = 5 * 1024**3
#: Part numbers run from 1 to this, by default (S3's).
MAX_PARTS = 10_000
#: Most parts or uploads one listing gives.
MAX_LISTED = 1000
#: The server's metadata key holding a part's number on its partial upload.
_PART_NUMBER = "_part_number"


@attrs.define(eq=False)
class PartBody:
    """One part's body from its admission until it lands. The edge plans
    the body with ``append`` (``append_plan(body.append)``): ``target`` is
    the file its bytes stream into; a body that breaks off takes its part
    with it. :meth:`land` records the part once the body is durable."""

    _multipart: Multipart
    upload: UploadRecord
    part_number: int
    append: Append

    @property
    def target(self) -> BlobFile:
        return self.append.target

    async def land(
        self,
        principal: Principal,
        digest: Digest,
        checksum: tuple[str, str] | None = None,
    ) -> PartRecord:
        """The body is durable: it is part ``part_number`` now (replacing
        the one before, whose bytes go), its entity tag its md5, with the
        ``checksum`` (algorithm, value) the client sent, if any."""
        return await self._multipart._land(self, principal, digest, checksum)


@attrs.define
class Multipart:
    """Multipart uploads into buckets. Made once per process: it hears
    every upload that ends unfinished and every bucket deleted, to remove
    what they leave behind."""

    _store: IMetadataStore
    _uploads: Resumable
    _buckets: Buckets
    _clock: IReactorTime
    min_part: int = MIN_PART
    max_part: int = MAX_PART
    max_parts: int = MAX_PARTS
    #: The largest object parts may make (None: no limit).
    max_size: int | None = None

    def __attrs_post_init__(self) -> None:
        self._uploads.on_ended.append(self._ended)
        self._buckets.on_deleted.append(self._bucket_deleted)

    # -- the upload ----------------------------------------------------------

    async def create(
        self, principal: Principal, bucket: str, key: str, meta: ObjectMeta
    ) -> MultipartUpload:
        """A new multipart upload of ``key``, with what the client says of
        the object it will make."""
        found = await self._buckets.writable(principal, bucket, key)
        owner = await self._buckets.owner_of(principal, found.owner_id)
        filename = filename_of(key)
        metadata = {
            "bucket": bucket,
            "key": key,
            "filename": filename,
            "content_type": file_type(meta.content_type, filename),
            "meta": meta_json(meta),
        }
        record = await self._uploads.create(
            owner, PROTOCOL, None, metadata, concat=rules.FINAL
        )
        return shown(record)

    async def _upload(
        self, principal: Principal, bucket: str, key: str, upload_id: str, use: str
    ) -> UploadRecord:
        """The open multipart upload ``upload_id`` of ``key``, if
        ``principal`` may ``use`` its bucket; else NotFound (reason
        NO_UPLOAD). Read from the store: another instance may have changed
        it."""
        found = await self._buckets.get(principal, bucket, use)
        record = await self._store.get_upload(upload_id)
        if (
            record is None
            or not is_multipart(record)
            or record.owner_id != found.owner_id
            or (record.metadata.get("bucket"), record.metadata.get("key"))
            != (bucket, key)
            or record.state != rules.OPEN
            or rules.has_expired(record, self._clock.seconds())
        ):
            raise NotFound(
                f"no multipart upload {upload_id} of {key!r} in {bucket!r}",
                reason=Reason.NO_UPLOAD,
            )
        return record

    async def abort(
        self, principal: Principal, bucket: str, key: str, upload_id: str
    ) -> None:
        """Forget the upload and its parts with their bytes (not while it
        is being completed: Busy)."""
        record = await self._upload(principal, bucket, key, upload_id, "delete")
        writer = self._uploads.writers.claim(record.id)
        try:
            # Its parts go as it ends (_ended).
            await self._uploads.terminate(record)
        finally:
            writer.release()

    # -- parts -----------------------------------------------------------------

    async def begin_part(
        self,
        principal: Principal,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        length: int | None,
        check: BodyCheck | None = None,
    ) -> PartBody:
        """Admit the body of part ``part_number`` (of ``length`` bytes when
        known; at most :attr:`max_part`), vouched for by ``check`` if given:
        its part is a new partial upload the body streams into."""
        record = await self._upload(principal, bucket, key, upload_id, "write")
        check_part_number(part_number, self.max_parts)
        rules.check_length(length, self.max_part)
        owner = await self._owner(principal, record)
        part = await self._uploads.create(
            owner,
            PROTOCOL,
            length,
            {},
            concat=rules.PARTIAL,
            own={rules.PART_OF: record.id, _PART_NUMBER: str(part_number)},
        )
        append = begin_append(
            self._uploads,
            part,
            AppendAsk(0, complete=True, body_length=length),
            self.max_part,
            check,
            created=True,
        )
        return PartBody(self, record, part_number, append)

    async def _owner(self, principal: Principal, record: UploadRecord) -> Principal:
        """Who the upload's parts belong to: its owner (the bucket's)."""
        return await self._buckets.owner_of(principal, record.owner_id)

    async def _land(
        self,
        body: PartBody,
        principal: Principal,
        digest: Digest,
        checksum: tuple[str, str] | None,
    ) -> PartRecord:
        owner = await self._owner(principal, body.upload)
        part, _ = await body.append.land(owner, digest)
        if part.state != rules.COMPLETE:
            await self._uploads.terminate(part, "failed")
            raise Invalid(
                f"part {body.part_number} ended after {part.received} of its "
                f"{part.length} bytes",
                reason=Reason.INCOMPLETE_BODY,
            )
        recorded = PartRecord(
            body.upload.id,
            body.part_number,
            part.id,
            part.received,
            digest.md5,
            self._clock.seconds(),
            checksum[0] if checksum else None,
            checksum[1] if checksum else None,
        )
        upload = await self._store.get_upload(body.upload.id)
        try:
            if upload is None or upload.state != rules.OPEN:
                raise StoreConflict("the upload ended")
            replaced = await self._store.save_part(recorded)
        except StoreConflict:
            # Aborted, expired or completed while this body streamed.
            await self._forget_part(part)
            raise NotFound(
                f"multipart upload {body.upload.id} ended while part "
                f"{body.part_number} arrived",
                reason=Reason.NO_UPLOAD,
            ) from None
        if replaced is not None and replaced.part_upload_id != part.id:
            before = await self._store.get_upload(replaced.part_upload_id)
            if before is not None:
                await self._forget_part(before)
        await self._uploads.touch(upload)
        log.info(
            "part {number} of upload {upload_id}: {size} bytes",
            number=body.part_number,
            upload_id=body.upload.id,
            size=recorded.size,
        )
        return recorded

    async def _forget_part(self, part: UploadRecord) -> None:
        """A part and its bytes go, wherever they are held."""
        source = self._uploads.parts
        if not self._uploads.holds(part) and source is not None:
            await source.drop(part)
        await self._uploads.terminate(part)

    async def list_parts(
        self,
        principal: Principal,
        bucket: str,
        key: str,
        upload_id: str,
        marker: int = 0,
        max_parts: int = MAX_LISTED,
    ) -> PartsPage:
        """Up to ``max_parts`` (at most :data:`MAX_LISTED`) of the upload's
        parts numbered after ``marker``."""
        record = await self._upload(principal, bucket, key, upload_id, "list")
        if max_parts < 0 or marker < 0:
            raise Invalid(
                "max-parts and part-number-marker may not be negative",
                reason=Reason.BAD_ARGUMENT,
            )
        size = min(max_parts, MAX_LISTED)
        after = [
            p for p in await self._store.parts_of(record.id) if p.part_number > marker
        ]
        page = after[:size]
        truncated = len(after) > size
        last = page[-1].part_number if truncated and page else None
        return PartsPage(shown(record), page, truncated, last)

    # -- completion --------------------------------------------------------------

    async def complete(
        self,
        principal: Principal,
        bucket: str,
        key: str,
        upload_id: str,
        listed: Sequence[tuple[int, str]],
    ) -> ObjectInfo:
        """Join the listed parts (number, entity tag), in ascending order
        (else Invalid, reason PART_ORDER), each recorded with that tag
        (BAD_PART), each but the last at least :attr:`min_part` bytes
        (PART_TOO_SMALL), into a new file of the library: the newest version
        of ``key``, its entity tag :func:`multipart_etag`. Parts not listed
        go. Not while another completion of it runs here (Busy). Sent
        again once it succeeded (a client retrying), it answers the same
        while the key still names what it made."""
        done = await self._completed(principal, bucket, key, upload_id, listed)
        if done is not None:
            return done
        record = await self._upload(principal, bucket, key, upload_id, "write")
        parts = await self._chosen(record, listed)
        writer = self._uploads.writers.claim(record.id)
        try:
            found = await self._buckets.writable(principal, bucket, key)
            owner = await self._buckets.owner_of(principal, found.owner_id)
            parent = await self._buckets.parent_for(bucket, key)
            joined, stored = await self._uploads.assemble(
                owner,
                [part.part_upload_id for part in parts],
                {"parent": parent or ""},
                into=record,
            )
        finally:
            writer.release()
        assert stored is not None  # a final upload becomes a file
        etag = multipart_etag([part.etag for part in parts])
        try:
            info = await self._buckets.put_object(
                principal, bucket, key, stored, meta_of(record), etag
            )
        finally:
            await self._discard_parts(joined)
            for part in parts:
                await self._store.delete_upload(part.part_upload_id)
        log.info(
            "multipart upload {upload_id} made {key} of {bucket} from {count} parts",
            upload_id=record.id,
            key=key,
            bucket=bucket,
            count=len(parts),
        )
        return info

    async def _completed(
        self,
        principal: Principal,
        bucket: str,
        key: str,
        upload_id: str,
        listed: Sequence[tuple[int, str]],
    ) -> ObjectInfo | None:
        """The object a completion with the same parts made already, if the
        key still names it."""
        found = await self._buckets.get(principal, bucket, "write")
        record = await self._store.get_upload(upload_id)
        if (
            record is None
            or not is_multipart(record)
            or record.state != rules.COMPLETE
            or record.file_id is None
            or record.owner_id != found.owner_id
            or (record.metadata.get("bucket"), record.metadata.get("key"))
            != (bucket, key)
        ):
            return None
        made = await self._store.get_object(bucket, key)
        if made is None or made.file_id != record.file_id:
            return None
        info = object_info(made)
        try:
            etag = multipart_etag([tag.strip().strip('"') for _, tag in listed])
        except ValueError:
            return None
        return info if etag == info.etag else None

    async def _chosen(
        self, record: UploadRecord, listed: Sequence[tuple[int, str]]
    ) -> list[PartRecord]:
        """The recorded parts a completion lists, once every rule holds."""
        return choose_parts(
            await self._store.parts_of(record.id),
            listed,
            self.min_part,
            self.max_parts,
            self.max_size,
        )

    # -- what an upload leaves behind ------------------------------------------------

    async def _discard_parts(self, record: UploadRecord) -> None:
        """The parts of ``record`` not yet joined go with their bytes (a
        part still streaming here goes when it lands), and the part table."""
        for found in await self._store.uploads_of(record.owner_id):
            if found.metadata.get(rules.PART_OF) != record.id:
                continue
            if self._uploads.writers.busy(found.id):
                continue
            await self._forget_part(found)
        await self._store.delete_parts(record.id)

    async def _ended(self, record: UploadRecord) -> None:
        """An upload ended unfinished (aborted, expired): a multipart
        upload's parts go too."""
        if is_multipart(record):
            await self._discard_parts(record)

    async def _bucket_deleted(self, bucket: BucketRecord) -> None:
        """A deleted bucket's unfinished multipart uploads go."""
        for record in await self._store.uploads_of(bucket.owner_id):
            if is_multipart(record) and record.metadata.get("bucket") == bucket.name:
                await self._uploads.terminate(record)

    # -- listing ---------------------------------------------------------------------

    async def list_uploads(
        self,
        principal: Principal,
        bucket: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = MAX_LISTED,
    ) -> UploadsPage:
        """Up to ``max_uploads`` (at most :data:`MAX_LISTED`) of the
        bucket's unfinished multipart uploads of keys under ``prefix``, by
        key and then by when they began, after ``key_marker`` (and, for
        that key, after the upload ``upload_id_marker``); keys holding
        ``delimiter`` after the prefix are rolled up into common prefixes,
        each given once."""
        found = await self._buckets.get(principal, bucket, "list")
        if max_uploads < 0:
            raise Invalid("max-uploads may not be negative", reason=Reason.BAD_ARGUMENT)
        now = self._clock.seconds()
        open_ones = sorted(
            (
                record
                for record in await self._store.uploads_of(found.owner_id)
                if is_multipart(record)
                and record.metadata.get("bucket") == bucket
                and record.metadata.get("key", "").startswith(prefix)
                and not rules.has_expired(record, now)
            ),
            key=lambda r: (r.metadata["key"], r.created_at, r.id),
        )
        return page_of_uploads(
            open_ones,
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            min(max_uploads, MAX_LISTED),
        )
