"""Resumable uploads, and the uploadd instances holding their bytes."""

from __future__ import annotations

from uploadd.store.interface import (
    Conflict,
    InstanceRecord,
    UploadRecord,
)
from uploadd.store.sql.base import Cursor, SQLBase
from uploadd.store.sql.rows import (
    _UPLOAD_COLUMNS,
    _upload,
    _upload_values,
)


class Uploads(SQLBase):
    """Resumable uploads."""

    async def add_upload(self, record: UploadRecord) -> None:
        def run(cursor: Cursor) -> None:
            try:
                cursor.execute(
                    f"INSERT INTO uploads ({_UPLOAD_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    _upload_values(record),
                )
            except self._integrity_errors as error:
                raise Conflict(f"upload {record.id}: {error}") from None

        await self._write(run)

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        rows = await self._query(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE id = ?", upload_id
        )
        return _upload(rows[0]) if rows else None

    async def save_upload(self, record: UploadRecord) -> None:
        values = _upload_values(record)

        def run(cursor: Cursor) -> None:
            names = [name.strip() for name in _UPLOAD_COLUMNS.split(",")][1:]
            assignments = ", ".join(f"{name} = ?" for name in names)
            cursor.execute(
                f"UPDATE uploads SET {assignments} WHERE id = ?",
                (*values[1:], values[0]),
            )

        await self._write(run)

    async def delete_upload(self, upload_id: str) -> bool:
        def run(cursor: Cursor) -> bool:
            cursor.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
            return cursor.rowcount > 0

        deleted: bool = await self._write(run)
        return deleted

    async def touch_upload(self, upload_id: str, expires_at: float) -> bool:
        def run(cursor: Cursor) -> bool:
            cursor.execute(
                "UPDATE uploads SET expires_at = ? WHERE id = ? AND state = 'open'",
                (expires_at, upload_id),
            )
            return cursor.rowcount > 0

        touched: bool = await self._write(run)
        return touched

    async def uploads_of(self, owner_id: int) -> list[UploadRecord]:
        rows = await self._query(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE owner_id = ? AND"
            " (state = 'open' OR (state = 'complete' AND concat = 'partial'"
            " AND file_id IS NULL))"
            f" ORDER BY created_at, {self._binary.format('id')}",
            owner_id,
        )
        return [_upload(row) for row in rows]

    async def expired_uploads(
        self, now: float, holder: str | None = None
    ) -> list[UploadRecord]:
        rows = await self._query(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads"
            " WHERE state = 'open' AND expires_at IS NOT NULL AND expires_at <= ?",
            now,
        )
        found = [_upload(row) for row in rows]
        return [u for u in found if holder is None or u.holder in (holder, "")]

    # -- the instances holding them --------------------------------------------

    async def register_instance(self, record: InstanceRecord) -> None:
        def run(cursor: Cursor) -> None:
            cursor.execute(
                "SELECT retired_at FROM instances WHERE name = ?", (record.name,)
            )
            found = cursor.fetchall()
            if found and found[0][0] is not None:
                raise Conflict(f"instance {record.name!r} was retired")
            if found:
                cursor.execute(
                    "UPDATE instances SET url = ?, started_at = ? WHERE name = ?",
                    (record.url, record.started_at, record.name),
                )
            else:
                cursor.execute(
                    "INSERT INTO instances (name, url, started_at) VALUES (?, ?, ?)",
                    (record.name, record.url, record.started_at),
                )

        await self._write(run)

    async def get_instance(self, name: str) -> InstanceRecord | None:
        rows = await self._query(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE name = ?", name
        )
        return InstanceRecord(*rows[0]) if rows else None

    async def list_instances(self) -> list[InstanceRecord]:
        rows = await self._query(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances ORDER BY name"
        )
        return [InstanceRecord(*row) for row in rows]

    async def retire_instance(self, name: str, now: float) -> int:
        def run(cursor: Cursor) -> int:
            cursor.execute(
                "UPDATE instances SET retired_at = ? WHERE name = ?", (now, name)
            )
            if cursor.rowcount == 0:
                return 0
            cursor.execute(
                "UPDATE uploads SET state = 'cancelled' WHERE holder = ? AND"
                " (state = 'open' OR (state = 'complete' AND concat = 'partial'))",
                (name,),
            )
            return int(cursor.rowcount)

        cancelled: int = await self._write(run)
        return cancelled


_INSTANCE_COLUMNS = "name, url, started_at, retired_at"
