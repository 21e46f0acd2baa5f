"""A private PostgreSQL cluster for the tests: Debian's postgresql 15 on a
free loopback port, its own socket dir, stopped by pid.

PostgreSQL refuses to run as root and CI runs as root: then every server
command runs as the ``postgres`` system user on directories it owns.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import attrs
import psycopg

from tests.integration.broker import free_port

BINDIR = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "uploadd"


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@attrs.define
class Cluster:
    """One initdb'd cluster in ``base`` (data in ``base/data``, socket and log
    in ``base``), listening on 127.0.0.1:``port``."""

    base: Path
    port: int
    pid: int | None = None
    #: Off for the tests; on for a benchmark that compares commit costs.
    fsync: bool = False

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self.base.chmod(0o700)
        subprocess.run(
            _as_server_user(
                [
                    str(BINDIR / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    SUPERUSER,
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        # fsync off unless asked: a test cluster never needs to survive a
        # power cut.
        options = f"-p {self.port} -k {self.base} -h 127.0.0.1"
        if not self.fsync:
            options += " -c fsync=off"
        subprocess.run(
            _as_server_user(
                [
                    str(BINDIR / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-l",
                    str(self.base / "server.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=90,
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def create_database(self, name: str) -> str:
        """A new empty database ``name``; its URL."""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url(name)

    def stop(self) -> None:
        """``pg_ctl -m fast stop``; by pid (TERM, then KILL) if that fails;
        then remove everything."""
        try:
            if self.pid is not None:
                stopped = subprocess.run(
                    _as_server_user(
                        [
                            str(BINDIR / "pg_ctl"),
                            "-D",
                            str(self.data),
                            "-m",
                            "fast",
                            "-w",
                            "-t",
                            "30",
                            "stop",
                        ]
                    ),
                    capture_output=True,
                    timeout=60,
                )
                if stopped.returncode != 0:
                    self._kill(self.pid)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    @staticmethod
    def _kill(pid: int) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)


def start_cluster(fsync: bool = False, parent: str | None = None) -> Cluster:
    """A running private cluster in a new temporary directory (in ``parent``,
    else the system's)."""
    if not (BINDIR / "initdb").exists():
        raise RuntimeError("postgresql 15 is not installed (make setup installs it)")
    cluster = Cluster(
        Path(tempfile.mkdtemp(prefix="uploadd-pg-", dir=parent)),
        free_port(),
        fsync=fsync,
    )
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def empty_tables(url: str) -> None:
    """Delete every row of every table but ``schema_version``, identities
    restarted: a migrated database as new, without migrating again."""
    with psycopg.connect(url, autocommit=True) as connection:
        names = [
            row[0]
            for row in connection.execute(
                b"SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                b" AND tablename <> 'schema_version'"
            )
        ]
        if names:
            listed = ", ".join(f'"{name}"' for name in names)
            connection.execute(f"TRUNCATE {listed} RESTART IDENTITY CASCADE".encode())
