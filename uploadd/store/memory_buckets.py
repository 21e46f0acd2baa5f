"""The in-memory store's buckets, objects, access keys and multipart parts
(:class:`~uploadd.store.buckets.IBucketStore`), with the references the SQL
stores enforce: an object needs its bucket and its file, a key its user, a
part its upload; each goes with what it needs."""

from __future__ import annotations

import attrs

from uploadd.store.buckets import (
    AccessKeyRecord,
    BucketRecord,
    ObjectRecord,
    PartRecord,
)
from uploadd.store.interface import Conflict, FileRecord, UploadRecord, User


class BucketsInMemory:
    """The bucket half of :class:`~uploadd.store.memory.MemoryStore`, which
    declares the fields (attrs collects only its own)."""

    users: dict[str, User]
    files: dict[str, FileRecord]
    uploads: dict[str, UploadRecord]
    buckets: dict[str, BucketRecord]
    objects: dict[tuple[str, str], ObjectRecord]
    access_keys: dict[str, AccessKeyRecord]
    parts: dict[tuple[str, int], PartRecord]

    def _user_ids(self) -> set[int]:
        return {user.id for user in self.users.values()}

    # -- what goes with what -----------------------------------------------------

    def _forget_user(self, user_id: int) -> None:
        """A user's buckets (their objects) and access keys go with them."""
        for bucket in [b for b in self.buckets.values() if b.owner_id == user_id]:
            self._forget_bucket(bucket.name)
        for key in [k for k in self.access_keys.values() if k.user_id == user_id]:
            del self.access_keys[key.key_id]

    def _forget_bucket(self, name: str) -> None:
        for found in [k for k in self.objects if k[0] == name]:
            del self.objects[found]
        del self.buckets[name]

    def _forget_file(self, file_id: str) -> None:
        for found in [k for k, o in self.objects.items() if o.file_id == file_id]:
            del self.objects[found]

    def _forget_upload(self, upload_id: str) -> None:
        for found in [k for k in self.parts if k[0] == upload_id]:
            del self.parts[found]

    # -- buckets -----------------------------------------------------------------

    async def add_bucket(self, bucket: BucketRecord) -> None:
        if bucket.name in self.buckets:
            raise Conflict(f"bucket {bucket.name!r} exists")
        if bucket.owner_id not in self._user_ids():
            raise Conflict(f"bucket {bucket.name!r}: user {bucket.owner_id} unknown")
        self.buckets[bucket.name] = bucket

    async def get_bucket(self, name: str) -> BucketRecord | None:
        return self.buckets.get(name)

    async def list_buckets(self, owner_id: int | None) -> list[BucketRecord]:
        found = [b for b in self.buckets.values() if owner_id in (None, b.owner_id)]
        return sorted(found, key=lambda b: b.name)

    async def delete_bucket(self, name: str) -> bool:
        if name not in self.buckets:
            return False
        if await self.has_objects(name):
            raise Conflict(f"bucket {name!r} is not empty")
        self._forget_bucket(name)
        return True

    async def set_bucket_cors(self, name: str, cors: str | None) -> bool:
        if name not in self.buckets:
            return False
        self.buckets[name] = attrs.evolve(self.buckets[name], cors=cors)
        return True

    # -- objects -----------------------------------------------------------------

    async def put_object(self, record: ObjectRecord) -> ObjectRecord | None:
        if record.bucket not in self.buckets or record.file_id not in self.files:
            raise Conflict(
                f"object {record.key!r} of {record.bucket!r}: no such bucket or file"
            )
        replaced = self.objects.get((record.bucket, record.key))
        self.objects[(record.bucket, record.key)] = record
        return replaced

    async def get_object(self, bucket: str, key: str) -> ObjectRecord | None:
        return self.objects.get((bucket, key))

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        after: str = "",
        limit: int = 1000,
        including: bool = False,
    ) -> list[ObjectRecord]:
        # Python compares text by code point: UTF-8's byte order.
        keys = sorted(
            key
            for name, key in self.objects
            if name == bucket
            and key.startswith(prefix)
            and (key > after or (including and key == after))
        )
        return [self.objects[(bucket, key)] for key in keys[:limit]]

    async def delete_object(self, bucket: str, key: str) -> bool:
        return self.objects.pop((bucket, key), None) is not None

    async def has_objects(self, bucket: str) -> bool:
        return any(name == bucket for name, _ in self.objects)

    # -- access keys -------------------------------------------------------------

    async def add_access_key(self, record: AccessKeyRecord) -> None:
        if record.key_id in self.access_keys:
            raise Conflict(f"access key {record.key_id} exists")
        if record.user_id not in self._user_ids():
            raise Conflict(f"access key {record.key_id}: user {record.user_id} unknown")
        self.access_keys[record.key_id] = record

    async def get_access_key(self, key_id: str) -> AccessKeyRecord | None:
        return self.access_keys.get(key_id)

    async def access_keys_of(self, user_id: int | None) -> list[AccessKeyRecord]:
        found = [k for k in self.access_keys.values() if user_id in (None, k.user_id)]
        return sorted(found, key=lambda k: (k.created_at, k.key_id))

    async def revoke_access_key(self, key_id: str, now: float) -> bool:
        found = self.access_keys.get(key_id)
        if found is None or found.revoked_at is not None:
            return False
        self.access_keys[key_id] = attrs.evolve(found, revoked_at=now)
        return True

    # -- multipart parts ---------------------------------------------------------

    async def save_part(self, part: PartRecord) -> PartRecord | None:
        if part.upload_id not in self.uploads:
            raise Conflict(f"part {part.part_number}: no upload {part.upload_id}")
        replaced = self.parts.get((part.upload_id, part.part_number))
        self.parts[(part.upload_id, part.part_number)] = part
        return replaced

    async def parts_of(self, upload_id: str) -> list[PartRecord]:
        found = [p for (u, _), p in self.parts.items() if u == upload_id]
        return sorted(found, key=lambda p: p.part_number)

    async def delete_parts(self, upload_id: str) -> int:
        found = [k for k in self.parts if k[0] == upload_id]
        for key in found:
            del self.parts[key]
        return len(found)
