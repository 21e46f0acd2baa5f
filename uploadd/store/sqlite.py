"""The embedded metadata store: SQLite through adbapi's thread pool.

One connection (SQLite allows one writer) in a pool thread, so no query ever
runs on the reactor thread. Migrations are the numbered ``migrations/*.sql``
files; ``PRAGMA user_version`` records how far a database has come.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
from twisted.enterprise import adbapi
from twisted.internet.interfaces import IReactorCore, IReactorThreads
from zope.interface import implementer

from uploadd.store.interface import (
    Conflict,
    Delivery,
    Event,
    FileRecord,
    IMetadataStore,
    NodeRecord,
    Page,
    Replica,
    UploadRecord,
    User,
    Webhook,
)

_FILE_COLUMNS = (
    "id, owner_id, filename, size, sha256, md5, content_type, created_at, parent"
)


def migrations() -> list[tuple[int, str]]:
    """(version, SQL) for every shipped migration, in order."""
    found = []
    for entry in resources.files("uploadd.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text("utf-8")))
    return sorted(found)


def _open(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=5000")


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


_UPLOAD_COLUMNS = (
    "id, owner_id, protocol, length, created_at, expires_at, state, received,"
    " ranges, metadata, concat, parts, file_id, base"
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


def _insert_events(cursor: sqlite3.Cursor, events: Sequence[Event]) -> None:
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
    )


class _Reactor(IReactorCore, IReactorThreads):
    """What the connection pool needs of a reactor."""


@implementer(IMetadataStore)
class SQLiteStore:
    """IMetadataStore on one SQLite file."""

    def __init__(self, path: Path, reactor: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._pool = adbapi.ConnectionPool(
            "sqlite3",
            str(path),
            check_same_thread=False,
            isolation_level=None,
            cp_min=1,
            cp_max=1,
            cp_openfun=_open,
            cp_reactor=reactor,
        )

    def close(self) -> None:
        self._pool.close()

    async def _run(self, function: Any, *args: Any) -> Any:
        return await self._pool.runWithConnection(function, *args)

    @staticmethod
    def _transaction(connection: sqlite3.Connection, statements: Any) -> Any:
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            result = statements(cursor)
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
        return result

    async def _write(self, statements: Any) -> Any:
        return await self._run(self._transaction, statements)

    async def _query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        def run(connection: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return connection.execute(sql, params).fetchall()

        rows: list[tuple[Any, ...]] = await self._run(run)
        return rows

    async def migrate(self) -> int:
        def run(cursor: sqlite3.Cursor) -> int:
            current: int = cursor.execute("PRAGMA user_version").fetchone()[0]
            for version, sql in migrations():
                if version > current:
                    for statement in sql.split(";"):
                        if statement.strip():
                            cursor.execute(statement)
                    cursor.execute(f"PRAGMA user_version = {version:d}")
                    current = version
            return current

        version: int = await self._write(run)
        return version

    async def add_user(
        self, username: str, password_hash: str, scopes: frozenset[str], now: float
    ) -> User:
        def run(cursor: sqlite3.Cursor) -> int:
            try:
                cursor.execute(
                    "INSERT INTO users (username, password_hash, scopes, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (username, password_hash, " ".join(sorted(scopes)), now),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"user {username!r} exists") from None
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        user_id = await self._write(run)
        return User(user_id, username, password_hash, scopes, now)

    async def update_user(
        self,
        username: str,
        password_hash: str | None = None,
        scopes: frozenset[str] | None = None,
    ) -> User | None:
        def run(cursor: sqlite3.Cursor) -> None:
            if password_hash is not None:
                cursor.execute(
                    "UPDATE users SET password_hash = ? WHERE username = ?",
                    (password_hash, username),
                )
            if scopes is not None:
                cursor.execute(
                    "UPDATE users SET scopes = ? WHERE username = ?",
                    (" ".join(sorted(scopes)), username),
                )

        await self._write(run)
        return await self.get_user(username)

    async def set_email(self, username: str, email: str | None) -> bool:
        def run(cursor: sqlite3.Cursor) -> bool:
            cursor.execute(
                "UPDATE users SET email = ? WHERE username = ?", (email, username)
            )
            return cursor.rowcount > 0

        changed: bool = await self._write(run)
        return changed

    async def get_user(self, username: str) -> User | None:
        rows = await self._query(
            "SELECT id, username, password_hash, scopes, created_at, email FROM users"
            " WHERE username = ?",
            username,
        )
        return _user(rows[0]) if rows else None

    async def get_user_by_id(self, user_id: int) -> User | None:
        rows = await self._query(
            "SELECT id, username, password_hash, scopes, created_at, email FROM users"
            " WHERE id = ?",
            user_id,
        )
        return _user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        rows = await self._query(
            "SELECT id, username, password_hash, scopes, created_at, email FROM users"
            " ORDER BY username"
        )
        return [_user(row) for row in rows]

    async def delete_user(self, username: str) -> bool:
        def run(cursor: sqlite3.Cursor) -> bool:
            cursor.execute("DELETE FROM users WHERE username = ?", (username,))
            return cursor.rowcount > 0

        deleted: bool = await self._write(run)
        return deleted

    async def add_file(self, record: FileRecord, events: Sequence[Event] = ()) -> None:
        def run(cursor: sqlite3.Cursor) -> None:
            try:
                cursor.execute(
                    f"INSERT INTO files ({_FILE_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.owner_id,
                        record.filename,
                        record.size,
                        record.sha256,
                        record.md5,
                        record.content_type,
                        record.created_at,
                        record.parent,
                    ),
                )
            except sqlite3.IntegrityError as error:
                raise Conflict(f"file {record.id}: {error}") from None
            _insert_events(cursor, events)

        await self._write(run)

    async def get_file(self, file_id: str) -> FileRecord | None:
        rows = await self._query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE id = ?", file_id
        )
        return _file(rows[0]) if rows else None

    async def list_files(self, owner_id: int | None, offset: int, limit: int) -> Page:
        where, params = ("WHERE owner_id = ?", [owner_id]) if owner_id else ("", [])

        def run(connection: sqlite3.Connection) -> Page:
            count = connection.execute(
                f"SELECT COUNT(*) FROM files {where}", params
            ).fetchone()[0]
            rows = connection.execute(
                f"SELECT {_FILE_COLUMNS} FROM files {where}"
                " ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
            return Page(count, [_file(row) for row in rows])

        page: Page = await self._run(run)
        return page

    async def versions_of(self, file_id: str) -> list[FileRecord]:
        rows = await self._query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE parent = ?"
            " ORDER BY created_at, id",
            file_id,
        )
        return [_file(row) for row in rows]

    async def add_upload(self, record: UploadRecord) -> None:
        def run(cursor: sqlite3.Cursor) -> None:
            try:
                cursor.execute(
                    f"INSERT INTO uploads ({_UPLOAD_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    _upload_values(record),
                )
            except sqlite3.IntegrityError as error:
                raise Conflict(f"upload {record.id}: {error}") from None

        await self._write(run)

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        rows = await self._query(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE id = ?", upload_id
        )
        return _upload(rows[0]) if rows else None

    async def save_upload(self, record: UploadRecord) -> None:
        values = _upload_values(record)

        def run(cursor: sqlite3.Cursor) -> None:
            names = [name.strip() for name in _UPLOAD_COLUMNS.split(",")][1:]
            assignments = ", ".join(f"{name} = ?" for name in names)
            cursor.execute(
                f"UPDATE uploads SET {assignments} WHERE id = ?",
                (*values[1:], values[0]),
            )

        await self._write(run)

    async def delete_upload(self, upload_id: str) -> bool:
        def run(cursor: sqlite3.Cursor) -> bool:
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

    async def add_node(self, record: NodeRecord) -> None:
        def run(cursor: sqlite3.Cursor) -> None:
            try:
                cursor.execute(
                    "INSERT INTO nodes (id, host, port, mode, added_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (record.id, record.host, record.port, record.mode, record.added_at),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"node {record.id!r} exists") from None

        await self._write(run)

    async def save_node(self, record: NodeRecord) -> None:
        def run(cursor: sqlite3.Cursor) -> None:
            cursor.execute(
                "UPDATE nodes SET host = ?, port = ?, mode = ? WHERE id = ?",
                (record.host, record.port, record.mode, record.id),
            )

        await self._write(run)

    async def delete_node(self, node_id: str) -> bool:
        def run(cursor: sqlite3.Cursor) -> bool:
            cursor.execute("DELETE FROM replicas WHERE node_id = ?", (node_id,))
            cursor.execute("DELETE FROM nodes WHERE id = ?", (node_id,))
            return cursor.rowcount > 0

        deleted: bool = await self._write(run)
        return deleted

    async def list_nodes(self) -> list[NodeRecord]:
        rows = await self._query(
            "SELECT id, host, port, added_at, mode FROM nodes ORDER BY id"
        )
        return [NodeRecord(*row) for row in rows]

    async def add_replica(self, replica: Replica) -> None:
        def run(cursor: sqlite3.Cursor) -> None:
            cursor.execute(
                "INSERT OR REPLACE INTO replicas (file_id, node_id, size, verified_at)"
                " VALUES (?, ?, ?, ?)",
                (replica.file_id, replica.node_id, replica.size, replica.verified_at),
            )

        await self._write(run)

    async def remove_replica(self, file_id: str, node_id: str) -> bool:
        def run(cursor: sqlite3.Cursor) -> bool:
            cursor.execute(
                "DELETE FROM replicas WHERE file_id = ? AND node_id = ?",
                (file_id, node_id),
            )
            return cursor.rowcount > 0

        removed: bool = await self._write(run)
        return removed

    async def replicas_of(self, file_id: str) -> list[Replica]:
        rows = await self._query(
            "SELECT file_id, node_id, size, verified_at FROM replicas"
            " WHERE file_id = ? ORDER BY node_id",
            file_id,
        )
        return [Replica(*row) for row in rows]

    async def replica_map(
        self, after_id: str, limit: int
    ) -> list[tuple[str, list[str]]]:
        rows = await self._query(
            "SELECT f.id, group_concat(r.node_id) FROM"
            " (SELECT id FROM files WHERE id > ? ORDER BY id LIMIT ?) AS f"
            " LEFT JOIN replicas AS r ON r.file_id = f.id"
            " GROUP BY f.id ORDER BY f.id",
            after_id,
            limit,
        )
        return [(row[0], sorted(row[1].split(",")) if row[1] else []) for row in rows]

    async def add_webhook(self, webhook: Webhook) -> None:
        def run(cursor: sqlite3.Cursor) -> None:
            cursor.execute(
                "INSERT INTO webhooks (id, owner_id, url, events, secret, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    webhook.id,
                    webhook.owner_id,
                    webhook.url,
                    " ".join(webhook.events),
                    webhook.secret,
                    webhook.created_at,
                ),
            )

        await self._write(run)

    async def webhooks_of(self, owner_id: int) -> list[Webhook]:
        rows = await self._query(
            "SELECT id, owner_id, url, events, secret, created_at FROM webhooks"
            " WHERE owner_id = ? ORDER BY created_at, id",
            owner_id,
        )
        return [
            Webhook(r[0], r[1], r[2], tuple(r[3].split()), r[4], r[5]) for r in rows
        ]

    async def delete_webhook(self, webhook_id: str) -> bool:
        def run(cursor: sqlite3.Cursor) -> bool:
            cursor.execute("DELETE FROM deliveries WHERE webhook_id = ?", (webhook_id,))
            cursor.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
            return cursor.rowcount > 0

        deleted: bool = await self._write(run)
        return deleted

    async def save_delivery(self, delivery: Delivery) -> None:
        def run(cursor: sqlite3.Cursor) -> None:
            cursor.execute(
                "INSERT OR REPLACE INTO deliveries (id, webhook_id, event_id, topic,"
                " attempts, status, error, delivered, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                attrs.astuple(delivery),
            )

        await self._write(run)

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        rows = await self._query(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", delivery_id
        )
        return _delivery(rows[0]) if rows else None

    async def deliveries_of(self, webhook_id: str, limit: int) -> list[Delivery]:
        rows = await self._query(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE webhook_id = ?"
            " ORDER BY updated_at DESC, id LIMIT ?",
            webhook_id,
            limit,
        )
        return [_delivery(row) for row in rows]

    async def replica_counts(self) -> dict[str, int]:
        rows = await self._query(
            "SELECT node_id, COUNT(*) FROM replicas GROUP BY node_id"
        )
        return {node_id: count for node_id, count in rows}

    async def delete_file(self, file_id: str, events: Sequence[Event] = ()) -> bool:
        def run(cursor: sqlite3.Cursor) -> bool:
            cursor.execute("DELETE FROM files WHERE id = ?", (file_id,))
            deleted = cursor.rowcount > 0
            if deleted:
                _insert_events(cursor, events)
            return deleted

        deleted: bool = await self._write(run)
        return deleted

    async def add_events(self, events: Sequence[Event]) -> None:
        await self._write(lambda cursor: _insert_events(cursor, events))

    async def pending_events(self, limit: int) -> list[Event]:
        rows = await self._query(
            "SELECT id, topic, owner_id, payload, created_at FROM events"
            " WHERE sent_at IS NULL ORDER BY id LIMIT ?",
            limit,
        )
        return [
            Event(topic, json.loads(payload), owner_id, created_at, event_id)
            for event_id, topic, owner_id, payload, created_at in rows
        ]

    async def mark_sent(self, event_ids: Sequence[int], now: float) -> None:
        def run(cursor: sqlite3.Cursor) -> None:
            cursor.executemany(
                "UPDATE events SET sent_at = ? WHERE id = ?",
                [(now, event_id) for event_id in event_ids],
            )

        await self._write(run)

    async def outbox_depth(self) -> int:
        rows = await self._query("SELECT COUNT(*) FROM events WHERE sent_at IS NULL")
        count: int = rows[0][0]
        return count
