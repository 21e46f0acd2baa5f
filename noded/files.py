"""The replicas a node holds: where they live, their size and sha256, space.

Every method blocks (disk): call them from a thread.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import attrs

from noded.protocol import UnknownFile

_ID = re.compile(r"^[0-9a-f]{32}$")


def check_id(file_id: str) -> str:
    """A file id is 32 lowercase hex digits; anything else is no file of ours."""
    if not _ID.match(file_id):
        raise UnknownFile(file_id)
    return file_id


@attrs.define
class NodeFiles:
    root: Path
    _digests: dict[str, tuple[int, int, str]] = attrs.field(factory=dict)

    @property
    def files(self) -> Path:
        return self.root / "files"

    def path(self, file_id: str) -> Path:
        check_id(file_id)
        return self.files / file_id[:2] / file_id

    def stat(self, file_id: str) -> tuple[int, str]:
        """(size, sha256) of a held file; the hash is cached per (size, mtime)."""
        path = self.path(file_id)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise UnknownFile(file_id) from None
        cached = self._digests.get(file_id)
        if cached and cached[:2] == (info.st_size, info.st_mtime_ns):
            return info.st_size, cached[2]
        digest = hashlib.sha256()
        with path.open("rb", buffering=0) as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        self._digests[file_id] = (info.st_size, info.st_mtime_ns, digest.hexdigest())
        return info.st_size, digest.hexdigest()

    def delete(self, file_id: str) -> bool:
        self._digests.pop(file_id, None)
        try:
            self.path(file_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def usage(self) -> tuple[int, int]:
        """(count, bytes) of the replicas held, in one walk of their
        directories (a transfer's temporary file is not one)."""
        count = size = 0
        if not self.files.is_dir():
            return count, size
        with os.scandir(self.files) as prefixes:
            for prefix in prefixes:
                if not prefix.is_dir(follow_symlinks=False):
                    continue
                with os.scandir(prefix.path) as entries:
                    for entry in entries:
                        if _ID.match(entry.name) and entry.is_file(
                            follow_symlinks=False
                        ):
                            count += 1
                            size += entry.stat(follow_symlinks=False).st_size
        return count, size

    def space(self) -> tuple[int, int]:
        """(free, total) bytes of the filesystem holding the files."""
        self.files.mkdir(parents=True, exist_ok=True)
        stats = os.statvfs(self.files)
        return stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize
