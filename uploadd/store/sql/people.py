"""Users and their files."""

from __future__ import annotations

import re
from collections.abc import Sequence

from uploadd.store.interface import (
    FILE_ORDERS,
    Conflict,
    Event,
    FileRecord,
    Page,
    Rendition,
    User,
)
from uploadd.store.sql.base import Cursor, SQLBase
from uploadd.store.sql.rows import (
    _FILE_COLUMNS,
    _RENDITION_COLUMNS,
    _delete_row,
    _file,
    _insert_events,
    _insert_file,
    _rendition_values,
    _user,
)


class UsersAndFiles(SQLBase):
    """Users and their files."""

    async def add_user(
        self, username: str, password_hash: str, scopes: frozenset[str], now: float
    ) -> User:
        def run(cursor: Cursor) -> int:
            try:
                cursor.execute(
                    "INSERT INTO users (username, password_hash, scopes, created_at)"
                    " VALUES (?, ?, ?, ?) RETURNING id",
                    (username, password_hash, " ".join(sorted(scopes)), now),
                )
            except self._integrity_errors:
                raise Conflict(f"user {username!r} exists") from None
            user_id: int = cursor.fetchone()[0]
            return user_id

        user_id = await self._write(run)
        return User(user_id, username, password_hash, scopes, now)

    async def update_user(
        self,
        username: str,
        password_hash: str | None = None,
        scopes: frozenset[str] | None = None,
    ) -> User | None:
        def run(cursor: Cursor) -> None:
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
        def run(cursor: Cursor) -> bool:
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
        def run(cursor: Cursor) -> bool:
            cursor.execute("DELETE FROM users WHERE username = ?", (username,))
            return cursor.rowcount > 0

        deleted: bool = await self._write(run)
        return deleted

    async def add_file(
        self,
        record: FileRecord,
        events: Sequence[Event] = (),
        renditions: Sequence[Rendition] = (),
    ) -> None:
        def run(cursor: Cursor) -> None:
            try:
                _insert_file(cursor, record)
            except self._integrity_errors as error:
                raise Conflict(f"file {record.id}: {error}") from None
            cursor.executemany(
                f"INSERT INTO renditions ({_RENDITION_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_rendition_values(r) for r in renditions],
            )
            _insert_events(cursor, events)

        await self._write(run)

    async def get_file(self, file_id: str) -> FileRecord | None:
        rows = await self._query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE id = ?", file_id
        )
        return _file(rows[0]) if rows else None

    async def list_files(
        self,
        owner_id: int | None,
        offset: int,
        limit: int,
        search: str = "",
        order: str = "-created",
    ) -> Page:
        where, params = "WHERE rendition_of IS NULL", list[object]()
        if owner_id:
            where, params = f"{where} AND owner_id = ?", [owner_id]
        if search:
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", search) + "%"
            name, wanted = self._fold.format("filename"), self._fold.format("?")
            where = f"{where} AND {name} LIKE {wanted} ESCAPE '\\'"
            params.append(pattern)
        ordering = self._file_order(order)

        def run(cursor: Cursor) -> Page:
            cursor.execute(f"SELECT COUNT(*) FROM files {where}", params)
            count = cursor.fetchone()[0]
            cursor.execute(
                f"SELECT {_FILE_COLUMNS} FROM files {where}"
                f" ORDER BY {ordering} LIMIT ? OFFSET ?",
                [*params, limit, offset],
            )
            return Page(count, [_file(row) for row in cursor.fetchall()])

        return await self._read(run)

    def _file_order(self, order: str) -> str:
        """The ORDER BY of a listing in ``order`` (ties: by id)."""
        if order not in FILE_ORDERS:
            raise ValueError(f"order is one of {', '.join(FILE_ORDERS)}")
        way = " DESC" if order.startswith("-") else ""
        keys = {
            "created": ["created_at"],
            "size": ["size"],
            "name": [self._fold.format("filename"), self._binary.format("filename")],
        }[order.lstrip("-")]
        return ", ".join([*(key + way for key in keys), self._binary.format("id")])

    async def versions_of(self, file_id: str) -> list[FileRecord]:
        rows = await self._query(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE parent = ?"
            " ORDER BY created_at, id",
            file_id,
        )
        return [_file(row) for row in rows]

    async def delete_file(self, file_id: str, events: Sequence[Event] = ()) -> bool:
        deleted: bool = await self._write(
            lambda cursor: _delete_row(cursor, "files", file_id, events)
        )
        return deleted
