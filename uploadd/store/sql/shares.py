"""Share links of files."""

from __future__ import annotations

from collections.abc import Sequence

from uploadd.store.interface import Conflict, Event, Share
from uploadd.store.sql.base import Cursor, SQLBase
from uploadd.store.sql.rows import _delete_row


class Shares(SQLBase):
    """Share links: which viewer tokens exist for which file."""

    async def add_share(self, share: Share) -> None:
        def run(cursor: Cursor) -> None:
            try:
                cursor.execute(
                    "INSERT INTO shares (id, file_id, created_at) VALUES (?, ?, ?)",
                    (share.id, share.file_id, share.created_at),
                )
            except self._integrity_errors as error:
                raise Conflict(f"share {share.id}: {error}") from None

        await self._write(run)

    async def get_share(self, share_id: str) -> Share | None:
        rows = await self._query(
            "SELECT id, file_id, created_at FROM shares WHERE id = ?", share_id
        )
        return Share(*rows[0]) if rows else None

    async def shares_of(self, file_id: str) -> list[Share]:
        rows = await self._query(
            "SELECT id, file_id, created_at FROM shares WHERE file_id = ?"
            " ORDER BY created_at, id",
            file_id,
        )
        return [Share(*row) for row in rows]

    async def delete_share(self, share_id: str, events: Sequence[Event] = ()) -> bool:
        deleted: bool = await self._write(
            lambda cursor: _delete_row(cursor, "shares", share_id, events)
        )
        return deleted
