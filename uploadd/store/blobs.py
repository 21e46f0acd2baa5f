"""Where file bytes live on disk: staging ``.part`` files and their final places.

``incoming/<id>.part`` while a body streams in; ``files/<ab>/<id>`` once it is
complete, fsynced and renamed. Every method here blocks: call it from a thread.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs


@attrs.frozen
class BlobStore:
    root: Path

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    def staging_path(self, blob_id: str) -> Path:
        return self.incoming / f"{blob_id}.part"

    def path(self, blob_id: str) -> Path:
        return self.root / "files" / blob_id[:2] / blob_id

    def prepare(self) -> int:
        """Create the folders; remove ``.part`` files left by a crash. Count them."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        (self.root / "files").mkdir(parents=True, exist_ok=True)
        removed = 0
        for leftover in self.incoming.glob("*.part"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def commit(self, blob_id: str) -> Path:
        """Rename a complete staging file into place, durably."""
        final = self.path(blob_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.staging_path(blob_id).replace(final)
        _fsync_dir(final.parent)
        return final

    def remove(self, blob_id: str) -> None:
        self.path(blob_id).unlink(missing_ok=True)
        self.staging_path(blob_id).unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
