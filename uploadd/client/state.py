"""What the client keeps between runs, owner-only, in the user's state
directory (``$XDG_STATE_HOME/uploadd``, else ``~/.local/state/uploadd``):

- ``login.json``: per server URL the username and token from ``uploadctl
  login``, and which server was signed in to last (the default ``--url``);
- ``uploads.json``: per local file (a fingerprint of server, user, path,
  size and modification time) the tus URL of its upload, so the next run
  resumes it, or, when it finished, knows the file is there. Entries older
  than :data:`KEEP` go. Threads and processes update it under a lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

DIRECTORY, FILE = 0o700, 0o600
#: Seconds an upload is remembered (uploadd expires unfinished ones sooner).
KEEP = 30 * 86400


def state_dir(environ: Mapping[str, str]) -> Path:
    """Where the client keeps its files."""
    base = environ.get("XDG_STATE_HOME") or str(
        Path(environ.get("HOME") or Path.home()) / ".local" / "state"
    )
    return Path(base) / "uploadd"


def read_json(path: Path) -> dict[str, Any]:
    """The object in ``path``; empty when there is none (or it is not one)."""
    try:
        found = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def write_private(path: Path, document: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``document``, readable by its owner only, whole
    or not at all (a temporary file renamed over it)."""
    path.parent.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), FILE)
            json.dump(document, handle, indent=1, sort_keys=True)
            handle.write("\n")
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@attrs.frozen
class Login:
    url: str
    username: str
    token: str
    expires_at: float


@attrs.frozen
class Logins:
    """``login.json``."""

    path: Path

    def default_url(self) -> str | None:
        found = read_json(self.path).get("default")
        return found if isinstance(found, str) else None

    def get(self, url: str) -> Login | None:
        entry = read_json(self.path).get("servers", {}).get(url)
        if not isinstance(entry, dict):
            return None
        try:
            return Login(
                url,
                str(entry["username"]),
                str(entry["token"]),
                float(entry["expires_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, login: Login) -> None:
        """Keep ``login`` and make its server the default."""
        document = read_json(self.path)
        servers = document.get("servers")
        servers = servers if isinstance(servers, dict) else {}
        servers[login.url] = {
            "username": login.username,
            "token": login.token,
            "expires_at": login.expires_at,
        }
        write_private(self.path, {"default": login.url, "servers": servers})


def fingerprint(server: str, username: str, path: Path) -> str:
    """Names one version of one local file sent to one account: a file
    changed since (size or modification time) is another upload."""
    status = path.stat()
    text = json.dumps(
        [server, username, str(path.resolve()), status.st_size, status.st_mtime_ns]
    )
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.frozen
class Kept:
    url: str
    #: Whether the upload finished (its file was checked).
    done: bool


@attrs.frozen
class Uploads:
    """``uploads.json``: fingerprint -> {url, path, at, done}."""

    path: Path
    clock: Callable[[], float] = time.time

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The document, under an exclusive lock; written back after."""
        self.path.parent.mkdir(mode=DIRECTORY, parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            document = read_json(self.path)
            before = json.dumps(document, sort_keys=True)
            yield document
            old = self.clock() - KEEP
            for key, entry in list(document.items()):
                if not isinstance(entry, dict) or entry.get("at", 0) < old:
                    del document[key]
            if json.dumps(document, sort_keys=True) != before:
                write_private(self.path, document)
        finally:
            os.close(fd)

    def get(self, key: str) -> Kept | None:
        entry = read_json(self.path).get(key)
        url = entry.get("url") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(url, str):
            return None
        return Kept(url, entry.get("done") is True)

    def put(self, key: str, url: str, path: Path, done: bool = False) -> None:
        with self._locked() as document:
            document[key] = {
                "url": url,
                "path": str(path),
                "at": self.clock(),
                "done": done,
            }

    def drop(self, key: str) -> None:
        with self._locked() as document:
            document.pop(key, None)
