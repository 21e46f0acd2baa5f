"""Owner-only files: the data directory is 0700; the database (and its
journals), generated secrets and the admin password are 0600.

They hold password hashes, token and cluster secrets: nobody but the user
uploadd runs as may read them. Files are created with these modes, and ones
left looser by an older version are tightened (and logged) when opened.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from twisted.logger import Logger

log = Logger()

DIRECTORY, FILE = 0o700, 0o600

#: What SQLite keeps beside a database; it creates them with the
#: database's own mode.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def tighten(path: Path, mode: int) -> None:
    """Take away from ``path`` (if it exists) every permission ``mode`` lacks."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & ~mode:
        path.chmod(current & mode)
        log.info(
            "made {path} private: mode {old} -> {new}",
            path=str(path),
            old=f"{current:o}",
            new=f"{current & mode:o}",
        )


def private_dir(path: Path) -> Path:
    """``path``, created if missing, that only its owner may enter (0700)."""
    path.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
    tighten(path, DIRECTORY)
    return path


def private_file(path: Path) -> Path:
    """``path``, created empty if missing, that only its owner may read (0600)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE))
    tighten(path, FILE)
    return path


def private_database(path: Path) -> Path:
    """A SQLite database file and its journals, owner-only; a missing
    directory for it is created 0700."""
    path.parent.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        tighten(path.with_name(path.name + suffix), FILE)
    return path
