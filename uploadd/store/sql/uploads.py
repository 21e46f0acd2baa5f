"""Resumable uploads."""

from __future__ import annotations

from uploadd.store.interface import (
    Conflict,
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
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    async def expired_uploads(self, now: float) -> list[UploadRecord]:
        rows = await self._query(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads"
            " WHERE state = 'open' AND expires_at IS NOT NULL AND expires_at <= ?",
            now,
        )
        return [_upload(row) for row in rows]
