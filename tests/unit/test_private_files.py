"""The database, its journals and the generated secrets are 0600, the data
directory 0700: nobody but uploadd's user reads the password hashes."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest_twisted

from noded.private import private_dir
from noded.reactor import checked
from noded.secret import token_secret
from uploadd.store.sqlite import SQLiteStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest_twisted.ensureDeferred()
async def test_a_new_database_and_its_journals_are_owner_only(tmp_path: Path) -> None:
    """A database made in a new directory is 0600, as are the -wal and -shm
    files SQLite keeps beside it; the directory is 0700."""
    from twisted.internet import reactor

    path = tmp_path / "data" / "uploadd.sqlite3"
    store = SQLiteStore(path, checked(reactor))
    try:
        await store.migrate()
        await store.add_user("alice", "hash", frozenset({"write"}), 0.0)
        journals = [path.with_name(path.name + s) for s in ("-wal", "-shm")]
        assert all(p.exists() for p in journals)
        assert [mode(p) for p in (path, *journals)] == [0o600] * 3
        assert mode(path.parent) == 0o700
    finally:
        store.close()


@pytest_twisted.ensureDeferred()
async def test_a_database_left_readable_is_made_owner_only(tmp_path: Path) -> None:
    """A database (and a journal) an older version left 0644 is 0600 once
    opened."""
    from twisted.internet import reactor

    path = tmp_path / "uploadd.sqlite3"
    first = SQLiteStore(path, checked(reactor))
    await first.migrate()
    first.close()
    path.chmod(0o644)
    wal = path.with_name(path.name + "-wal")
    wal.touch(mode=0o644)
    wal.chmod(0o644)
    again = SQLiteStore(path, checked(reactor))
    try:
        await again.list_users()
        assert (mode(path), mode(wal)) == (0o600, 0o600)
    finally:
        again.close()


def test_secrets_are_owner_only_even_if_they_were_not(tmp_path: Path) -> None:
    """A generated secret is 0600 in a 0700 directory it made; one an older
    version left 0644 is tightened when read, and keeps its value."""
    data = tmp_path / "data"
    secret = token_secret("", data)
    path = data / "secret"
    assert (mode(path), mode(data)) == (0o600, 0o700)
    path.chmod(0o644)
    assert token_secret("", data) == secret
    assert mode(path) == 0o600


def test_an_existing_data_dir_is_made_owner_only(tmp_path: Path) -> None:
    """A data directory that exists 0755 becomes 0700."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    private_dir(data)
    assert mode(data) == 0o700
