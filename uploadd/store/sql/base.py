"""What every part of a SQL store builds on, and the shared migrations.

SQL here is written once, in the subset SQLite and PostgreSQL share, with
``?`` placeholders (a PostgreSQL cursor turns them into ``%s``). A dialect
subclass runs statements in its own threads, never the reactor's, and
names what differs: its integrity errors, its string aggregate and how it
compares text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Cursor(Protocol):
    """The DB-API cursor subset the parts use (sqlite3's, or psycopg's
    behind :class:`uploadd.store.postgres.base.QmarkCursor`)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


def migrations(dialect: str) -> list[tuple[int, str]]:
    """(version, SQL) for every shipped migration, in order, as ``dialect``
    runs them. One set of versions: ``NNNN_name.sql`` is the SQL both
    dialects share, and ``NNNN_name.DIALECT.sql`` beside it replaces it for
    the dialect whose types or keys must differ."""
    generic: dict[int, str] = {}
    special: dict[int, str] = {}
    for entry in resources.files("uploadd.store").joinpath("migrations").iterdir():
        parts = entry.name.split(".")
        if parts[-1] != "sql":
            continue
        version = int(parts[0].split("_", 1)[0])
        if len(parts) == 2:
            generic[version] = entry.read_text("utf-8")
        elif parts[1] == dialect:
            special[version] = entry.read_text("utf-8")
    orphans = set(special) - set(generic)
    if orphans:
        raise ValueError(f"{dialect} migrations without a shared version: {orphans}")
    return sorted({**generic, **special}.items())


class SQLBase:
    """The connection-independent half of a SQL store."""

    # The exceptions a broken UNIQUE, PRIMARY KEY or REFERENCES raises.
    _integrity_errors: tuple[type[Exception], ...] = ()
    # group_concat(x, sep) in SQLite, string_agg(x, sep) in PostgreSQL.
    _string_agg: str = "group_concat"
    # Text compared byte by byte (SQLite's default), and text with A-Z
    # lowered and nothing else (what SQLite's lower() does): PostgreSQL's
    # follow the database's locale unless told "C".
    _binary: str = "{}"
    _fold: str = "lower({})"

    async def _read(self, statements: Callable[[Cursor], T]) -> T:
        """``statements(cursor)`` outside a transaction, off the reactor."""
        raise NotImplementedError

    async def _write(self, statements: Callable[[Cursor], T]) -> T:
        """``statements(cursor)`` in one transaction, off the reactor; an
        exception rolls it back."""
        raise NotImplementedError

    async def _query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        def run(cursor: Cursor) -> list[tuple[Any, ...]]:
            cursor.execute(sql, params)
            return [tuple(row) for row in cursor.fetchall()]

        return await self._read(run)
