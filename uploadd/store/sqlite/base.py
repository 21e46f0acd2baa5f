"""The SQLite connection: one writer thread, transactions, migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from twisted.enterprise import adbapi

from noded.private import private_database
from noded.reactor import IReactor
from uploadd.store.sql.base import Cursor, SQLBase
from uploadd.store.sql.base import migrations as _migrations

T = TypeVar("T")


def migrations() -> list[tuple[int, str]]:
    """(version, SQL) for every shipped migration, in order, for SQLite."""
    return _migrations("sqlite")


def _open(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=5000")


class SQLiteBase(SQLBase):
    """What every part of the store builds on."""

    _integrity_errors = (sqlite3.IntegrityError,)
    _string_agg = "group_concat"

    def __init__(self, path: Path, reactor: IReactor) -> None:
        # Password hashes live here: 0600, and so are the -wal and -shm
        # files SQLite makes with the database's mode.
        self.path = private_database(path)
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

    async def leads(self, duty: str) -> bool:
        return True  # a SQLite file has one uploadd: the only instance

    async def _run(self, function: Any, *args: Any) -> Any:
        return await self._pool.runWithConnection(function, *args)

    @staticmethod
    def _transaction(
        connection: sqlite3.Connection, statements: Callable[[Cursor], T]
    ) -> T:
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            result = statements(cursor)
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
        return result

    async def _write(self, statements: Callable[[Cursor], T]) -> T:
        result: T = await self._run(self._transaction, statements)
        return result

    async def _read(self, statements: Callable[[Cursor], T]) -> T:
        def run(connection: sqlite3.Connection) -> T:
            return statements(connection.cursor())

        result: T = await self._run(run)
        return result

    async def migrate(self) -> int:
        def run(cursor: Cursor) -> int:
            cursor.execute("PRAGMA user_version")
            current: int = cursor.fetchone()[0]
            for version, sql in migrations():
                if version > current:
                    for statement in sql.split(";"):
                        if statement.strip():
                            cursor.execute(statement)
                    cursor.execute(f"PRAGMA user_version = {version:d}")
                    current = version
            return current

        return await self._write(run)
