"""Where file bytes live on disk: staging ``.part`` files and their final places.

``incoming/<id>.part`` while a single-request body streams in;
``uploads/<id>.bin`` while a resumable upload is open (across requests and
restarts); ``files/<ab>/<id>`` once complete, fsynced and renamed. Every
method here blocks: call it from a thread.
"""

from __future__ import annotations

import contextlib
import fcntl
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

    def clone(self, source_id: str, blob_id: str) -> bool:
        """A staging file ``blob_id`` with the stored file ``source_id``'s
        bytes, durable, sharing its extents where the filesystem can (a
        reflink, else copy_file_range in the kernel); False when this disk
        does not hold ``source_id``."""
        try:
            source = os.open(self.path(source_id), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            target = os.open(
                self.staging_path(blob_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640
            )
            try:
                _clone(source, target)
                os.fsync(target)
            except BaseException:
                self.staging_path(blob_id).unlink(missing_ok=True)
                raise
            finally:
                os.close(target)
        finally:
            os.close(source)
        return True

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


#: ioctl(FICLONE) (linux/fs.h): the target shares the source's extents.
FICLONE = 0x40049409


def _clone(source: int, target: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(target, FICLONE, source)
        return
    left = os.fstat(source).st_size
    while left:
        copied = os.copy_file_range(source, target, left)
        if copied == 0:
            raise OSError("the source file ended early")
        left -= copied


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
