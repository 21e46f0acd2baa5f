"""Renditions: transcode jobs of a file and the files they made."""

from __future__ import annotations

from collections.abc import Sequence

from uploadd.store.interface import (
    Conflict,
    Event,
    FileRecord,
    Rendition,
    place_output,
)
from uploadd.store.sql.base import Cursor, SQLBase
from uploadd.store.sql.rows import (
    _RENDITION_COLUMNS,
    _insert_events,
    _insert_file,
    _rendition,
    _rendition_values,
)


class Renditions(SQLBase):
    """Renditions and their outputs."""

    async def renditions_of(self, source_id: str) -> list[Rendition]:
        rows = await self._query(
            f"SELECT {_RENDITION_COLUMNS} FROM renditions WHERE source_id = ?"
            " ORDER BY created_at, rowid",
            source_id,
        )
        return [_rendition(row) for row in rows]

    async def get_rendition(self, source_id: str, profile: str) -> Rendition | None:
        rows = await self._query(
            f"SELECT {_RENDITION_COLUMNS} FROM renditions"
            " WHERE source_id = ? AND profile = ?",
            source_id,
            profile,
        )
        return _rendition(rows[0]) if rows else None

    async def save_rendition(
        self,
        rendition: Rendition,
        expect_attempt: int,
        events: Sequence[Event] = (),
        drop: Sequence[str] = (),
    ) -> None:
        def run(cursor: Cursor) -> None:
            values = _rendition_values(rendition)
            cursor.execute(
                "UPDATE renditions SET state = ?, created_at = ?, updated_at = ?,"
                " percent = ?, error = ?, attempt = ?, outputs = ?, started_at = ?"
                " WHERE source_id = ? AND profile = ? AND attempt = ?",
                (*values[2:], rendition.source_id, rendition.profile, expect_attempt),
            )
            if cursor.rowcount != 1:
                raise Conflict(
                    f"rendition {rendition.profile} of {rendition.source_id} is"
                    f" gone or past attempt {expect_attempt}"
                )
            cursor.executemany(
                "DELETE FROM files WHERE id = ?", [(file_id,) for file_id in drop]
            )
            _insert_events(cursor, events)

        await self._write(run)

    async def add_output(
        self,
        record: FileRecord,
        profile: str,
        index: int,
        attempt: int,
        events: Sequence[Event] = (),
    ) -> str | None:
        def run(cursor: Cursor) -> str | None:
            found = cursor.execute(
                "SELECT attempt, outputs FROM renditions"
                " WHERE source_id = ? AND profile = ?",
                (record.rendition_of, profile),
            ).fetchone()
            if found is None or found[0] != attempt:
                raise Conflict(
                    f"rendition {profile} of {record.rendition_of} is gone or"
                    f" past attempt {attempt}"
                )
            outputs, replaced = place_output(found[1].split(), index, record.id)
            if replaced is not None:
                cursor.execute("DELETE FROM files WHERE id = ?", (replaced,))
            try:
                _insert_file(cursor, record)
            except self._integrity_errors as error:
                raise Conflict(f"file {record.id}: {error}") from None
            cursor.execute(
                "UPDATE renditions SET outputs = ? WHERE source_id = ? AND profile = ?",
                (" ".join(outputs), record.rendition_of, profile),
            )
            _insert_events(cursor, events)
            return replaced

        replaced: str | None = await self._write(run)
        return replaced
