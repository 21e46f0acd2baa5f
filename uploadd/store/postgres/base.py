"""The PostgreSQL connection: a psycopg pool in threads of its own,
serializable write transactions, migrations under an advisory lock."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from noded.reactor import IReactor
from uploadd.store.sql.base import Cursor, SQLBase
from uploadd.store.sql.base import migrations as _migrations

T = TypeVar("T")
log = Logger()

# Connections (and the threads that use them) one store holds at most.
POOL_SIZE = 4
# A serializable transaction that lost a race is run again this often.
RETRIES = 10
# pg_advisory_xact_lock key that lets one instance at a time migrate.
MIGRATION_LOCK = 0x75706C64  # "upld"
# First key of the session advisory locks that name each duty's leader.
DUTY_LOCKS = 0x64757479  # "duty"


def migrations() -> list[tuple[int, str]]:
    """(version, SQL) for every shipped migration, in order, for PostgreSQL."""
    return _migrations("postgresql")


class QmarkCursor:
    """A psycopg cursor that takes the ``?`` placeholders the shared SQL uses
    (no ``?`` or ``%`` appears in that SQL other than as a placeholder)."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> QmarkCursor:
        if parameters:
            self._cursor.execute(self._sql(sql), list(parameters))
        else:
            self._cursor.execute(sql)
        return self

    def executemany(
        self, sql: str, parameters: Iterable[Sequence[Any]], /
    ) -> QmarkCursor:
        rows = [list(row) for row in parameters]
        if rows:
            self._cursor.executemany(self._sql(sql), rows)
        return self

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class PostgresBase(SQLBase):
    """What every part of the store builds on.

    Writes run SERIALIZABLE, so a read-then-write (a rendition's attempt
    fence, an output's slot) behaves as under SQLite's single writer even
    with several uploadd instances on one database; a transaction that
    loses a race is run again. Reads run in autocommit."""

    _integrity_errors = (psycopg.errors.IntegrityError,)
    _string_agg = "string_agg"
    _binary = '{} COLLATE "C"'
    _fold = 'lower(CAST({} AS TEXT) COLLATE "C")'

    def __init__(self, url: str, reactor: IReactor) -> None:
        self.url = url
        self._reactor = reactor
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            open=False,
            kwargs={"autocommit": True},
            configure=_configure,
            name="uploadd",
        )
        self._threads = ThreadPool(1, POOL_SIZE, "uploadd-postgres")
        self._threads.start()
        # A duty's leader holds a session advisory lock on a connection of
        # its own, kept open while it leads: if the process dies, PostgreSQL
        # ends the session and the lock is free for another instance.
        self._duties: dict[str, psycopg.Connection[Any]] = {}
        self._leading: set[str] = set()
        self._duty_lock = threading.Lock()

    def close(self) -> None:
        self._threads.stop()
        with self._duty_lock:
            for connection in self._duties.values():
                connection.close()
            self._duties.clear()
            self._leading.clear()
        self._pool.close()

    async def leads(self, duty: str) -> bool:
        key = zlib.crc32(duty.encode("utf-8")) & 0x7FFFFFFF

        def ask() -> bool:
            with self._duty_lock:
                # One session per duty, kept whether or not it leads, so an
                # instance that does not lead asks again without reconnecting.
                connection = self._duties.get(duty)
                if connection is None or connection.closed:
                    connection = psycopg.connect(self.url, autocommit=True)
                    self._duties[duty] = connection
                    self._leading.discard(duty)
                try:
                    if duty in self._leading:
                        connection.execute("SELECT 1")
                        return True
                    row = connection.execute(
                        "SELECT pg_try_advisory_lock(%s, %s)", (DUTY_LOCKS, key)
                    ).fetchone()
                except psycopg.Error:
                    # The session (and a lock it held) is gone; ask anew later.
                    self._duties.pop(duty, None)
                    self._leading.discard(duty)
                    connection.close()
                    return False
                if row is not None and row[0]:
                    self._leading.add(duty)
                    log.info("this instance leads {duty}", duty=duty)
                    return True
                return False

        return await self._in_thread(ask)

    async def _in_thread(self, function: Callable[[], T]) -> T:
        result: T = await deferToThreadPool(self._reactor, self._threads, function)
        return result

    async def _read(self, statements: Callable[[Cursor], T]) -> T:
        def run() -> T:
            self._pool.open(wait=False)
            with self._pool.connection() as connection, connection.cursor() as cursor:
                return statements(QmarkCursor(cursor))

        return await self._in_thread(run)

    async def _write(self, statements: Callable[[Cursor], T]) -> T:
        def run() -> T:
            self._pool.open(wait=False)
            for attempt in range(1, RETRIES + 1):
                try:
                    with (
                        self._pool.connection() as connection,
                        connection.transaction(),
                        connection.cursor() as cursor,
                    ):
                        return statements(QmarkCursor(cursor))
                except (
                    psycopg.errors.SerializationFailure,
                    psycopg.errors.DeadlockDetected,
                ):
                    if attempt == RETRIES:
                        raise
                    log.debug("write retried after a serialization failure")
            raise AssertionError("unreachable")

        return await self._in_thread(run)

    async def migrate(self) -> int:
        def run(cursor: Cursor) -> int:
            cursor.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
            )
            cursor.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            current: int = cursor.fetchone()[0]
            for version, sql in migrations():
                if version > current:
                    cursor.execute(sql)
                    cursor.execute(
                        "INSERT INTO schema_version VALUES (?, now())", (version,)
                    )
                    current = version
            return current

        return await self._write(run)


def _configure(connection: psycopg.Connection[Any]) -> None:
    connection.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
