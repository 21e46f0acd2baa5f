"""Rows to records and back, shared by the SQL store's parts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs

from uploadd.store.interface import (
    Delivery,
    Event,
    FileRecord,
    Rendition,
    UploadRecord,
    User,
)
from uploadd.store.sql.base import Cursor

_FILE_COLUMNS = (
    "id, owner_id, filename, size, sha256, md5, content_type, created_at, parent,"
    " rendition_of"
)


def _user(row: tuple[Any, ...]) -> User:
    return User(
        id=row[0],
        username=row[1],
        password_hash=row[2],
        scopes=frozenset(row[3].split()),
        created_at=row[4],
        email=row[5],
    )


def _file(row: tuple[Any, ...]) -> FileRecord:
    return FileRecord(*row)


def _insert_file(cursor: Cursor, record: FileRecord) -> None:
    cursor.execute(
        f"INSERT INTO files ({_FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        attrs.astuple(record),
    )


_RENDITION_COLUMNS = (
    "source_id, profile, state, created_at, updated_at, percent, error, attempt,"
    " outputs, started_at"
)


def _rendition(row: tuple[Any, ...]) -> Rendition:
    values = list(row)
    values[8] = tuple(values[8].split()) if values[8] else ()
    return Rendition(*values)


def _rendition_values(rendition: Rendition) -> tuple[Any, ...]:
    values = list(attrs.astuple(rendition, recurse=False))
    values[8] = " ".join(rendition.outputs)
    return tuple(values)


_UPLOAD_COLUMNS = (
    "id, owner_id, protocol, length, created_at, expires_at, state, received,"
    " ranges, metadata, concat, parts, file_id, base, holder"
)


_DELIVERY_COLUMNS = (
    "id, webhook_id, event_id, topic, attempts, status, error, delivered, updated_at"
)


def _delivery(row: tuple[Any, ...]) -> Delivery:
    return Delivery(
        id=row[0],
        webhook_id=row[1],
        event_id=row[2],
        topic=row[3],
        attempts=row[4],
        status=row[5],
        error=row[6],
        delivered=bool(row[7]),
        updated_at=row[8],
    )


def _insert_events(cursor: Cursor, events: Sequence[Event]) -> None:
    cursor.executemany(
        "INSERT INTO events (topic, owner_id, payload, created_at) VALUES (?, ?, ?, ?)",
        [(e.topic, e.owner_id, json.dumps(e.payload), e.created_at) for e in events],
    )


def _upload(row: tuple[Any, ...]) -> UploadRecord:
    return UploadRecord(
        id=row[0],
        owner_id=row[1],
        protocol=row[2],
        length=row[3],
        created_at=row[4],
        expires_at=row[5],
        state=row[6],
        received=row[7],
        ranges=tuple((a, b) for a, b in json.loads(row[8])),
        metadata=json.loads(row[9]),
        concat=row[10],
        parts=tuple(json.loads(row[11])),
        file_id=row[12],
        base=row[13],
        holder=row[14],
    )


def _upload_values(record: UploadRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.owner_id,
        record.protocol,
        record.length,
        record.created_at,
        record.expires_at,
        record.state,
        record.received,
        json.dumps([list(span) for span in record.ranges]),
        json.dumps(record.metadata),
        record.concat,
        json.dumps(list(record.parts)),
        record.file_id,
        record.base,
        record.holder,
    )


def _delete_row(
    cursor: Cursor, table: str, row_id: str, events: Sequence[Event]
) -> bool:
    """Delete the row of ``table`` with ``row_id``; its ``events`` are written
    in the same transaction if there was one. Whether there was."""
    cursor.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))
    deleted = cursor.rowcount > 0
    if deleted:
        _insert_events(cursor, events)
    return deleted
