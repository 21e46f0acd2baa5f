"""The one place a metadata store is made from ``[database] url``.

uploadd, its worker processes and uploadctl all open their store here, so
a new kind of store is one more branch here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

from noded.reactor import IReactor
from uploadd.store.interface import IMetadataStore

SQLITE = "sqlite:///"
POSTGRESQL = ("postgresql://", "postgres://")


def sqlite_path(url: str, data_dir: Path) -> Path:
    """The SQLite file of ``url``; empty means ``<data_dir>/uploadd.sqlite3``.
    ``sqlite:///relative/path`` and ``sqlite:////absolute/path``, as SQLAlchemy."""
    if not url:
        return data_dir / "uploadd.sqlite3"
    return Path(url[len(SQLITE) :])


def open_store(url: str, data_dir: Path, reactor: IReactor) -> IMetadataStore:
    """The store ``url`` names (not yet migrated: its owner awaits
    ``migrate()`` before use and calls ``close()`` last)."""
    if not url or url.startswith(SQLITE):
        # Imported here: the SQLite parts load only for a SQLite store.
        from uploadd.store.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url, data_dir), reactor)
    if url.startswith(POSTGRESQL):
        # libpq reads the URL itself: a password in it, else PGPASSWORD or
        # ~/.pgpass; host, port, sslmode and the rest as query parameters.
        from uploadd.store.postgres import PostgresStore

        return PostgresStore(url, reactor)
    raise ValueError(f"[database] url: no store for {url!r}")
