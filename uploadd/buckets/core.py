"""Buckets and their objects on the store and the file library: who may
do what, storing a key (a new version of its file), reading, listing,
deleting and copying."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from noded.threads import Runner
from uploadd.auth.tokens import Principal
from uploadd.buckets.listing import MAX_KEYS, Listing, token_position, walk_keys
from uploadd.buckets.records import ObjectInfo, ObjectMeta, object_info
from uploadd.buckets.rules import (
    Reason,
    check_bucket_name,
    check_key,
    check_scopes,
    check_text,
    file_type,
    filename_of,
)
from uploadd.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from uploadd.ingest.blob import Digest
from uploadd.library import Library
from uploadd.store.blobs import BlobStore
from uploadd.store.buckets import BucketRecord, ObjectRecord
from uploadd.store.interface import Conflict as StoreConflict
from uploadd.store.interface import FileRecord, IMetadataStore

log = Logger()


@attrs.define
class Buckets:
    """Buckets and objects, on the store and the file library."""

    _store: IMetadataStore
    _library: Library
    _blobs: BlobStore
    _run: Runner
    _clock: IReactorTime
    #: Brings a file's bytes to a path here when this instance holds none
    #: (they are on nodes only): a copy's source. None: such a copy is
    #: Unavailable.
    fetch: Callable[[FileRecord, Path], Awaitable[None]] | None = None
    #: Heard once a bucket is deleted (its multipart uploads go).
    on_deleted: list[Callable[[BucketRecord], Awaitable[object]]] = attrs.field(
        factory=list
    )

    # -- buckets -----------------------------------------------------------------

    async def create(self, principal: Principal, name: str) -> BucketRecord:
        """A new bucket of ``principal``'s; Conflict when the name is taken
        (reason BUCKET_OWNED when by the caller, else BUCKET_TAKEN)."""
        check_scopes(principal, "manage")
        check_bucket_name(name)
        bucket = BucketRecord(name, principal.user_id, self._clock.seconds())
        try:
            await self._store.add_bucket(bucket)
        except StoreConflict:
            found = await self._store.get_bucket(name)
            if found is not None and found.owner_id == principal.user_id:
                raise Conflict(
                    f"you own bucket {name!r} already", reason=Reason.BUCKET_OWNED
                ) from None
            raise Conflict(
                f"bucket name {name!r} is taken", reason=Reason.BUCKET_TAKEN
            ) from None
        log.info(
            "bucket {bucket} created by {owner}", bucket=name, owner=principal.username
        )
        return bucket

    async def get(
        self, principal: Principal, name: str, use: str = "list"
    ) -> BucketRecord:
        """The bucket ``name``, if ``principal`` may ``use`` it (one of
        :data:`NEEDS`): NotFound if there is none, Forbidden if it is
        another user's (admins excepted) or the scopes do not reach."""
        bucket = await self._store.get_bucket(name)
        if bucket is None:
            raise NotFound(f"no bucket {name!r}", reason=Reason.NO_BUCKET)
        if bucket.owner_id != principal.user_id and not principal.is_admin:
            raise Forbidden(
                f"bucket {name!r} is another user's", reason=Reason.NOT_YOURS
            )
        check_scopes(principal, use)
        return bucket

    async def list_buckets(self, principal: Principal) -> list[BucketRecord]:
        """``principal``'s own buckets, by name."""
        check_scopes(principal, "list")
        return await self._store.list_buckets(principal.user_id)

    async def delete(self, principal: Principal, name: str) -> None:
        """Delete an empty bucket (else Conflict, reason BUCKET_NOT_EMPTY);
        its unfinished multipart uploads go with it."""
        bucket = await self.get(principal, name, "manage")
        try:
            deleted = await self._store.delete_bucket(name)
        except StoreConflict:
            raise Conflict(
                f"bucket {name!r} is not empty", reason=Reason.BUCKET_NOT_EMPTY
            ) from None
        if not deleted:
            raise NotFound(f"no bucket {name!r}", reason=Reason.NO_BUCKET)
        for hook in self.on_deleted:
            await hook(bucket)
        log.info("bucket {bucket} deleted", bucket=name)

    async def set_cors(self, principal: Principal, name: str, cors: str | None) -> None:
        """Set (None: clear) the bucket's CORS rules, a document the edge
        writes and reads."""
        await self.get(principal, name, "manage")
        if not await self._store.set_bucket_cors(name, cors):
            raise NotFound(f"no bucket {name!r}", reason=Reason.NO_BUCKET)

    async def owner_of(self, principal: Principal, owner_id: int) -> Principal:
        """Who a bucket's new files belong to: its owner ``owner_id``, also
        when an admin (``principal``) stores them."""
        if principal.user_id == owner_id:
            return principal
        user = await self._store.get_user_by_id(owner_id)
        name = user.username if user is not None else f"user {owner_id}"
        return Principal(owner_id, name, frozenset({"write"}))

    # -- objects -----------------------------------------------------------------

    async def writable(self, principal: Principal, name: str, key: str) -> BucketRecord:
        """The bucket, if ``principal`` may store ``key`` in it (checked
        before a body is read)."""
        bucket = await self.get(principal, name, "write")
        check_key(key)
        return bucket

    async def store_object(
        self,
        principal: Principal,
        name: str,
        key: str,
        blob_id: str,
        digest: Digest,
        meta: ObjectMeta,
        staged: Path | None = None,
    ) -> ObjectInfo:
        """The staged blob ``blob_id`` (or the file ``staged``) becomes a new
        file of the library, the newest version of ``key`` (its ``parent``
        is the file the key named), and the object ``key`` names. Refused
        before the library takes the body (the bucket went while it
        arrived), the staged bytes go."""
        try:
            bucket = await self.writable(principal, name, key)
            owner = await self.owner_of(principal, bucket.owner_id)
            previous = await self._store.get_object(name, key)
        except BaseException:
            await self.discard(blob_id, staged)
            raise
        filename = filename_of(key)
        record = await self._library.store(
            owner,
            blob_id,
            digest,
            filename,
            file_type(meta.content_type, filename),
            previous.file_id if previous is not None else None,
            staged=staged,
        )
        return await self._record(bucket, key, record, meta, record.md5)

    async def discard(self, blob_id: str, staged: Path | None = None) -> None:
        """Remove a staged body no object will have."""
        if staged is not None:
            await self._run(staged.unlink, True)
        await self._run(self._blobs.remove, blob_id)

    async def parent_for(self, name: str, key: str) -> str | None:
        """The file a new version of ``key`` continues: the one it names now."""
        found = await self._store.get_object(name, key)
        return found.file_id if found is not None else None

    async def put_object(
        self,
        principal: Principal,
        name: str,
        key: str,
        record: FileRecord,
        meta: ObjectMeta,
        etag: str | None = None,
    ) -> ObjectInfo:
        """Make the stored file ``record`` (a file of the bucket's owner,
        whose ``parent`` should be :meth:`parent_for` the key) the object
        ``key`` names, its entity tag ``etag`` (default: its md5)."""
        bucket = await self.writable(principal, name, key)
        if record.owner_id != bucket.owner_id:
            raise Forbidden(
                f"file {record.id} is not the bucket owner's", reason=Reason.NOT_YOURS
            )
        return await self._record(bucket, key, record, meta, etag or record.md5)

    async def _record(
        self,
        bucket: BucketRecord,
        key: str,
        record: FileRecord,
        meta: ObjectMeta,
        etag: str,
    ) -> ObjectInfo:
        kept = {
            "size": record.size,
            "etag": etag,
            "content_type": meta.content_type or record.content_type,
            "user": dict(meta.user),
            "headers": dict(meta.headers),
            "checksums": dict(meta.checksums),
        }
        stored = ObjectRecord(bucket.name, key, record.id, kept, self._clock.seconds())
        try:
            await self._store.put_object(stored)
        except StoreConflict:
            # The bucket went while the file was being stored.
            await self._library.delete(record)
            raise NotFound(
                f"no bucket {bucket.name!r}", reason=Reason.NO_BUCKET
            ) from None
        log.info(
            "object {key} of {bucket} is file {file_id}",
            key=key,
            bucket=bucket.name,
            file_id=record.id,
        )
        return object_info(stored)

    async def get_object(
        self, principal: Principal, name: str, key: str
    ) -> tuple[ObjectInfo, FileRecord]:
        """The object ``key`` and the file it is; NotFound (reason NO_KEY)."""
        await self.get(principal, name, "read")
        check_key(key)
        found = await self._store.get_object(name, key)
        record = None if found is None else await self._store.get_file(found.file_id)
        if found is None or record is None:
            raise NotFound(f"no key {key!r} in bucket {name!r}", reason=Reason.NO_KEY)
        return object_info(found), record

    async def history(
        self, principal: Principal, name: str, key: str
    ) -> list[FileRecord]:
        """The object's file and the versions before it, newest first."""
        _, record = await self.get_object(principal, name, key)
        return await self._versions(record)

    async def _versions(self, record: FileRecord) -> list[FileRecord]:
        chain, seen = [record], {record.id}
        while chain[-1].parent is not None and chain[-1].parent not in seen:
            older = await self._store.get_file(chain[-1].parent)
            if older is None or older.owner_id != record.owner_id:
                break
            chain.append(older)
            seen.add(older.id)
        return chain

    async def delete_object(self, principal: Principal, name: str, key: str) -> bool:
        """Remove the object and its file with every version before it, as
        deleting each file does (their bytes go from every node too);
        whether there was one. The file goes first and the object with it:
        a key put again meanwhile keeps its new file."""
        await self.get(principal, name, "delete")
        check_key(key)
        found = await self._store.get_object(name, key)
        record = None if found is None else await self._store.get_file(found.file_id)
        if record is None:
            return False
        for version in await self._versions(record):
            await self._library.delete(version)
        log.info("object {key} of {bucket} deleted", key=key, bucket=name)
        return True

    async def copy_object(
        self,
        principal: Principal,
        source_bucket: str,
        source_key: str,
        name: str,
        key: str,
        meta: ObjectMeta | None = None,
    ) -> ObjectInfo:
        """A new file with the bytes of ``source_key`` (shared on disk where
        the filesystem can), the newest version of ``key``, with ``meta``
        (None: the source's). A key copied onto itself needs new ``meta``
        (Invalid, reason COPY_TO_ITSELF)."""
        source, record = await self.get_object(principal, source_bucket, source_key)
        bucket = await self.writable(principal, name, key)
        if (source_bucket, source_key) == (name, key) and meta is None:
            raise Invalid(
                "an object copied onto itself needs new metadata",
                reason=Reason.COPY_TO_ITSELF,
            )
        blob_id = uuid.uuid4().hex
        if not await self._run(self._blobs.clone, record.id, blob_id):
            if self.fetch is None:
                raise Unavailable(
                    f"the bytes of {source_key!r} are not on this instance",
                    reason=Reason.SOURCE_ELSEWHERE,
                )
            try:
                await self.fetch(record, self._blobs.staging_path(blob_id))
            except BaseException:
                await self._run(self._blobs.remove, blob_id)
                raise
        owner = await self.owner_of(principal, bucket.owner_id)
        given = meta if meta is not None else source.meta
        filename = filename_of(key)
        stored = await self._library.store(
            owner,
            blob_id,
            Digest(record.size, record.sha256, record.md5),
            filename,
            file_type(given.content_type, filename),
            await self.parent_for(name, key),
        )
        return await self._record(bucket, key, stored, given, stored.md5)

    async def list_objects(
        self,
        principal: Principal,
        name: str,
        prefix: str = "",
        delimiter: str = "",
        max_keys: int = MAX_KEYS,
        start_after: str = "",
        token: str | None = None,
    ) -> Listing:
        """Up to ``max_keys`` (at most :data:`MAX_KEYS`) of the bucket's
        keys starting with ``prefix``, after ``start_after`` or where
        ``token`` left off, in key order. With a ``delimiter``, keys that
        hold it after the prefix are rolled up into their common prefix,
        which counts as one entry and is given once: the listing skips past
        every key under it (a store query each). A common prefix at or
        before the position was given before, and is not given again."""
        await self.get(principal, name, "list")
        if max_keys < 0:
            raise Invalid("max-keys may not be negative", reason=Reason.BAD_ARGUMENT)
        for text in (prefix, delimiter, start_after):
            check_text(text)
        after = token_position(token) if token is not None else start_after
        return await walk_keys(
            self._store, name, prefix, delimiter, min(max_keys, MAX_KEYS), after
        )
