"""Buckets, their objects, access keys and the parts of multipart uploads."""

from __future__ import annotations

import json
from typing import Any

from uploadd.store.buckets import (
    AccessKeyRecord,
    BucketRecord,
    ObjectRecord,
    PartRecord,
    key_successor,
)
from uploadd.store.interface import Conflict
from uploadd.store.sql.base import Cursor, SQLBase

_BUCKET_COLUMNS = "name, owner_id, created_at, cors"
_OBJECT_COLUMNS = "bucket, key, file_id, metadata, updated_at"
_KEY_COLUMNS = "key_id, user_id, scope, sealed, created_at, revoked_at"
_PART_COLUMNS = (
    "upload_id, part_number, part_upload_id, size, etag, created_at,"
    " checksum_algorithm, checksum"
)


def _object(row: tuple[Any, ...]) -> ObjectRecord:
    return ObjectRecord(row[0], row[1], row[2], json.loads(row[3]), row[4])


class Buckets(SQLBase):
    """Buckets and their objects; access keys; multipart parts."""

    # -- buckets -----------------------------------------------------------------

    async def add_bucket(self, bucket: BucketRecord) -> None:
        def run(cursor: Cursor) -> None:
            try:
                cursor.execute(
                    f"INSERT INTO buckets ({_BUCKET_COLUMNS}) VALUES (?, ?, ?, ?)",
                    (bucket.name, bucket.owner_id, bucket.created_at, bucket.cors),
                )
            except self._integrity_errors as error:
                raise Conflict(f"bucket {bucket.name!r}: {error}") from None

        await self._write(run)

    async def get_bucket(self, name: str) -> BucketRecord | None:
        rows = await self._query(
            f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE name = ?", name
        )
        return BucketRecord(*rows[0]) if rows else None

    async def list_buckets(self, owner_id: int | None) -> list[BucketRecord]:
        order = self._binary.format("name")
        if owner_id is None:
            rows = await self._query(
                f"SELECT {_BUCKET_COLUMNS} FROM buckets ORDER BY {order}"
            )
        else:
            rows = await self._query(
                f"SELECT {_BUCKET_COLUMNS} FROM buckets WHERE owner_id = ?"
                f" ORDER BY {order}",
                owner_id,
            )
        return [BucketRecord(*row) for row in rows]

    async def delete_bucket(self, name: str) -> bool:
        def run(cursor: Cursor) -> bool:
            # In the deleting transaction: an object put meanwhile is either
            # seen here or refused for want of its bucket.
            cursor.execute("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", (name,))
            if cursor.fetchall():
                raise Conflict(f"bucket {name!r} is not empty")
            cursor.execute("DELETE FROM buckets WHERE name = ?", (name,))
            return cursor.rowcount > 0

        deleted: bool = await self._write(run)
        return deleted

    async def set_bucket_cors(self, name: str, cors: str | None) -> bool:
        def run(cursor: Cursor) -> bool:
            cursor.execute("UPDATE buckets SET cors = ? WHERE name = ?", (cors, name))
            return cursor.rowcount > 0

        changed: bool = await self._write(run)
        return changed

    # -- objects -----------------------------------------------------------------

    async def put_object(self, record: ObjectRecord) -> ObjectRecord | None:
        def run(cursor: Cursor) -> ObjectRecord | None:
            cursor.execute(
                f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ?",
                (record.bucket, record.key),
            )
            found = cursor.fetchall()
            try:
                cursor.execute(
                    f"INSERT INTO objects ({_OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (bucket, key) DO UPDATE SET"
                    " file_id = excluded.file_id, metadata = excluded.metadata,"
                    " updated_at = excluded.updated_at",
                    (
                        record.bucket,
                        record.key,
                        record.file_id,
                        json.dumps(record.metadata),
                        record.updated_at,
                    ),
                )
            except self._integrity_errors as error:
                raise Conflict(
                    f"object {record.key!r} of {record.bucket!r}: {error}"
                ) from None
            return _object(tuple(found[0])) if found else None

        replaced: ObjectRecord | None = await self._write(run)
        return replaced

    async def get_object(self, bucket: str, key: str) -> ObjectRecord | None:
        rows = await self._query(
            f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ?",
            bucket,
            key,
        )
        return _object(rows[0]) if rows else None

    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        after: str = "",
        limit: int = 1000,
        including: bool = False,
    ) -> list[ObjectRecord]:
        where = [f"key {'>=' if including else '>'} ?"]
        params: list[Any] = [bucket, after]
        if prefix:
            # A range rather than LIKE: it walks the primary key's index in
            # byte order, and needs no escaping.
            where.append("key >= ?")
            params.append(prefix)
            upper = key_successor(prefix)
            if upper is not None:
                where.append("key < ?")
                params.append(upper)
        rows = await self._query(
            f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND "
            + " AND ".join(where)
            + f" ORDER BY {self._binary.format('key')} LIMIT ?",
            *params,
            limit,
        )
        return [_object(row) for row in rows]

    async def delete_object(self, bucket: str, key: str) -> bool:
        def run(cursor: Cursor) -> bool:
            cursor.execute(
                "DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
            )
            return cursor.rowcount > 0

        deleted: bool = await self._write(run)
        return deleted

    async def has_objects(self, bucket: str) -> bool:
        rows = await self._query(
            "SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", bucket
        )
        return bool(rows)

    # -- access keys -------------------------------------------------------------

    async def add_access_key(self, record: AccessKeyRecord) -> None:
        def run(cursor: Cursor) -> None:
            try:
                cursor.execute(
                    f"INSERT INTO access_keys ({_KEY_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        record.key_id,
                        record.user_id,
                        record.scope,
                        record.sealed,
                        record.created_at,
                        record.revoked_at,
                    ),
                )
            except self._integrity_errors as error:
                raise Conflict(f"access key {record.key_id}: {error}") from None

        await self._write(run)

    async def get_access_key(self, key_id: str) -> AccessKeyRecord | None:
        rows = await self._query(
            f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE key_id = ?", key_id
        )
        return AccessKeyRecord(*rows[0]) if rows else None

    async def access_keys_of(self, user_id: int | None) -> list[AccessKeyRecord]:
        order = f"created_at, {self._binary.format('key_id')}"
        if user_id is None:
            rows = await self._query(
                f"SELECT {_KEY_COLUMNS} FROM access_keys ORDER BY {order}"
            )
        else:
            rows = await self._query(
                f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE user_id = ?"
                f" ORDER BY {order}",
                user_id,
            )
        return [AccessKeyRecord(*row) for row in rows]

    async def revoke_access_key(self, key_id: str, now: float) -> bool:
        def run(cursor: Cursor) -> bool:
            cursor.execute(
                "UPDATE access_keys SET revoked_at = ?"
                " WHERE key_id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
            return cursor.rowcount > 0

        revoked: bool = await self._write(run)
        return revoked

    # -- multipart parts ---------------------------------------------------------

    async def save_part(self, part: PartRecord) -> PartRecord | None:
        def run(cursor: Cursor) -> PartRecord | None:
            cursor.execute(
                f"SELECT {_PART_COLUMNS} FROM multipart_parts"
                " WHERE upload_id = ? AND part_number = ?",
                (part.upload_id, part.part_number),
            )
            found = cursor.fetchall()
            try:
                cursor.execute(
                    f"INSERT INTO multipart_parts ({_PART_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (upload_id, part_number) DO UPDATE SET"
                    + ", ".join(
                        f" {name} = excluded.{name}"
                        for name in _PART_COLUMNS.replace(" ", "").split(",")[2:]
                    ),
                    (
                        part.upload_id,
                        part.part_number,
                        part.part_upload_id,
                        part.size,
                        part.etag,
                        part.created_at,
                        part.checksum_algorithm,
                        part.checksum,
                    ),
                )
            except self._integrity_errors as error:
                raise Conflict(
                    f"part {part.part_number} of {part.upload_id}: {error}"
                ) from None
            return PartRecord(*found[0]) if found else None

        replaced: PartRecord | None = await self._write(run)
        return replaced

    async def parts_of(self, upload_id: str) -> list[PartRecord]:
        rows = await self._query(
            f"SELECT {_PART_COLUMNS} FROM multipart_parts WHERE upload_id = ?"
            " ORDER BY part_number",
            upload_id,
        )
        return [PartRecord(*row) for row in rows]

    async def delete_parts(self, upload_id: str) -> int:
        def run(cursor: Cursor) -> int:
            cursor.execute(
                "DELETE FROM multipart_parts WHERE upload_id = ?", (upload_id,)
            )
            return int(cursor.rowcount)

        deleted: int = await self._write(run)
        return deleted
