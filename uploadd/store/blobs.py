"""Where file bytes live on disk: staging ``.part`` files and their final places.

``incoming/<id>.part`` while a single-request body streams in;
``uploads/<id>.bin`` while a resumable upload is open (across requests and
restarts); ``files/<ab>/<id>`` once complete, fsynced and renamed. Every
method here blocks: call it from a thread.
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

    def upload_path(self, upload_id: str) -> Path:
        return self.root / "uploads" / f"{upload_id}.bin"

    def path(self, blob_id: str) -> Path:
        return self.root / "files" / blob_id[:2] / blob_id

    def prepare(self) -> int:
        """Create the folders; remove ``.part`` files left by a crash. Count them."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        (self.root / "files").mkdir(parents=True, exist_ok=True)
        (self.root / "uploads").mkdir(parents=True, exist_ok=True)
        removed = 0
        for leftover in self.incoming.glob("*.part"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed

    def commit(self, blob_id: str, staged: Path | None = None) -> Path:
        """Rename a complete staging file (or ``staged``) into place, durably."""
        final = self.path(blob_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        (staged or self.staging_path(blob_id)).replace(final)
        _fsync_dir(final.parent)
        return final

    def remove(self, blob_id: str) -> None:
        self.path(blob_id).unlink(missing_ok=True)
        self.staging_path(blob_id).unlink(missing_ok=True)

    def create_upload(self, upload_id: str) -> None:
        """An empty data file for a new resumable upload."""
        os.close(os.open(self.upload_path(upload_id), os.O_CREAT | os.O_EXCL, 0o640))

    def remove_upload(self, upload_id: str) -> None:
        self.upload_path(upload_id).unlink(missing_ok=True)

    def upload_files(self) -> list[tuple[str, int]]:
        """(upload id, size) of every resumable upload's data file."""
        return [
            (path.stem, path.stat().st_size)
            for path in (self.root / "uploads").glob("*.bin")
        ]

    def file_ids(self) -> list[str]:
        """The id of every complete file kept here."""
        return [path.name for path in (self.root / "files").glob("??/*")]

    def truncate_upload(self, upload_id: str, size: int) -> None:
        """Cut an upload's data back to ``size`` bytes (drop unrecorded bytes)."""
        os.truncate(self.upload_path(upload_id), size)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
