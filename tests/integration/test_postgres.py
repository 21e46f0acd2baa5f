"""uploadctl and a real `twistd uploadd` on a real PostgreSQL (the session's
private cluster, this module's own database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.integration.daemon import ctl, start
from tests.postgres import empty_tables
from uploadd.store.postgres import migrations

pytestmark = pytest.mark.integration


@pytest.fixture
def database(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """uploadctl pointed at this module's database, emptied afterwards."""
    monkeypatch.setenv("UPLOADD_DATABASE_URL", postgres_url)
    yield postgres_url
    empty_tables(postgres_url)


def test_uploadctl_migrates_and_manages_users_on_postgresql(
    tmp_path: Path, database: str
) -> None:
    """migrate reports the newest version (and repeats safely); users and
    tokens live in PostgreSQL, not in a SQLite file of the data dir."""
    newest = migrations()[-1][0]
    assert ctl(tmp_path, "migrate") == f"schema version {newest}\n"
    assert ctl(tmp_path, "migrate") == f"schema version {newest}\n"
    ctl(tmp_path, "user", "add", "kiosk", "--scope", "write", stdin="long-enough\n")
    ctl(tmp_path, "user", "scopes", "kiosk", "read", "write")
    assert ctl(tmp_path, "user", "list") == "kiosk\tread write\n"
    assert ctl(tmp_path, "token", "kiosk", "--scope", "read").strip().count(".") == 2
    assert not (tmp_path / "uploadd.sqlite3").exists()
    with psycopg.connect(database) as connection:
        found = connection.execute(b"SELECT username, scopes FROM users").fetchall()
    assert found == [("kiosk", "read write")]


def test_the_daemon_stores_and_lists_an_upload_in_postgresql(
    tmp_path: Path, database: str
) -> None:
    """`twistd uploadd --database-url=postgresql://...` records an upload
    there and lists it."""
    daemon = start(tmp_path / "uploadd", f"--database-url={database}")
    try:
        status, _, body = daemon.request("PUT", "/files/hello.txt", b"hello, pg\n")
        assert status == 201, body
        listed = daemon.json("GET", "/files")
        assert listed["count"] == 1
        assert [f["filename"] for f in listed["results"]] == ["hello.txt"]
    finally:
        daemon.stop()
    with psycopg.connect(database) as connection:
        rows = connection.execute(b"SELECT filename, size FROM files").fetchall()
    assert rows == [("hello.txt", 10)]
    assert not (tmp_path / "uploadd" / "uploadd.sqlite3").exists()
