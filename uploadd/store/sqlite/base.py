"""The SQLite connection: one writer thread, transactions, migrations."""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any

from twisted.enterprise import adbapi

from noded.private import private_database
from noded.reactor import IReactor


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


class SQLiteBase:
    """What every part of the store builds on."""

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
