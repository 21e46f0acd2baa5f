"""An upload's file on the writer threads' side: bytes written, sums running.

:class:`BlobFile` is what a sink writes a body into; :class:`Hashes` the
running sums of a file across the bodies that make it; :class:`Digest` what
one body left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

#: Dirty bytes of a file to be made durable after which their writeback starts
#: (so the fsync that ends the body finds little left to flush).
WRITEBACK = 2 * 1024 * 1024


def _writeback() -> Callable[[int, int, int], None] | None:
    """``sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)``: start
    writing a range to disk and return (Linux; None elsewhere)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True) if name else None
    call = getattr(libc, "sync_file_range", None)
    if call is None:
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int

    def start(fd: int, offset: int, length: int) -> None:
        call(fd, offset, length, 2)  # SYNC_FILE_RANGE_WRITE; a hint only

    return start


start_writeback = _writeback()


@attrs.frozen
class Digest:
    """What one body left behind: its size, the running hashes after it, and
    the digest of the body alone when a per-body checksum was asked for.
    ``md5`` is empty when it was not computed."""

    size: int
    sha256: str
    md5: str
    check: bytes | None = None


@attrs.define
class Hashes:
    """sha256 (always) and md5 (where wanted) of a file's bytes from its start
    up to ``size``.

    A resumable upload keeps one across requests so the file's sums are ready
    when its last byte lands; ``copy()`` snapshots it before a body that may
    be discarded. Without md5 the file's md5 is unknown: an empty string in
    its :class:`Digest`, never a made-up value.
    """

    sha256: Any = attrs.field(factory=hashlib.sha256)
    md5: Any = None
    size: int = 0

    @classmethod
    def fresh(cls, md5: bool) -> Hashes:
        return cls(md5=hashlib.md5(usedforsecurity=False) if md5 else None)

    def copy(self) -> Hashes:
        md5 = self.md5.copy() if self.md5 is not None else None
        return Hashes(self.sha256.copy(), md5, self.size)

    def digest(self, check: bytes | None = None) -> Digest:
        return Digest(
            self.size,
            self.sha256.hexdigest(),
            self.md5.hexdigest() if self.md5 is not None else "",
            check,
        )


class BlobFile:
    """The thread side: one open file, the running hashes, an optional checksum.

    Either a new file (created exclusively; its md5 computed too with
    ``md5``) or, with ``offset``, an existing one written from ``offset`` on,
    continuing ``hashes``. Methods run on writer threads, never two
    at once for the same lane; the two lanes touch disjoint state.
    """

    def __init__(
        self,
        path: Path,
        fsync: bool,
        *,
        offset: int | None = None,
        hashes: Hashes | None = None,
        check: Any = None,
        md5: bool = False,
    ) -> None:
        self.path = path
        self.resuming = offset is not None
        self._offset = offset or 0
        self._fsync = fsync
        if offset is None:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        else:
            self._fd = os.open(path, os.O_WRONLY)
            os.lseek(self._fd, offset, os.SEEK_SET)
        self.hashes = Hashes.fresh(md5) if hashes is None and offset is None else hashes
        self._check = check
        self.written = 0
        self._open = True
        #: Where writeback was last started (durable files only).
        self._flushing = self._offset

    def write_sha256(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.take(memoryview(chunk))

    def take(self, view: memoryview) -> None:
        """Hash (sha256) and write one piece of the body."""
        if self.hashes is not None:
            self.hashes.sha256.update(view)
        size = len(view)
        while view:
            view = view[os.write(self._fd, view) :]
        self.written += size
        end = self._offset + self.written
        if self._fsync and end - self._flushing >= WRITEBACK:
            # Overlap the disk's flush with receiving the rest.
            if start_writeback is not None:
                start_writeback(self._fd, self._flushing, end - self._flushing)
            self._flushing = end

    @property
    def beside(self) -> bool:
        """Whether anything runs in a second lane beside sha256 and the write."""
        md5 = self.hashes.md5 if self.hashes is not None else None
        return md5 is not None or self._check is not None

    def update_beside(self, chunks: list[bytes]) -> None:
        md5 = self.hashes.md5 if self.hashes is not None else None
        for chunk in chunks:
            if md5 is not None:
                md5.update(chunk)
            if self._check is not None:
                self._check.update(chunk)

    def close(self) -> Digest:
        try:
            if self._fsync:
                os.fsync(self._fd)
        finally:
            self._open = False
            os.close(self._fd)
        check = self._check.digest() if self._check is not None else None
        hashes = self.hashes
        if hashes is None:
            return Digest(self.written, "", "", check)
        hashes.size += self.written
        return attrs.evolve(hashes.digest(check), size=self.written)

    def sync(self) -> None:
        """Make the bytes written so far durable (a checkpoint)."""
        os.fsync(self._fd)

    def discard(self, keep: int | None = None) -> int:
        """Give up on this body: a new file is removed; an existing one keeps
        the bytes written so far (or only the first ``keep`` of them), made
        durable. Returns how many bytes of this body it keeps."""
        was_open, self._open = self._open, False
        if self.resuming:
            kept = self.written if keep is None else min(keep, self.written)
            try:
                if keep is not None:
                    # Cut back first: this may be all the room the disk has.
                    os.truncate(self.path, self._offset + kept)
                if was_open:
                    os.fsync(self._fd)
            finally:
                if was_open:
                    os.close(self._fd)
            return kept
        if was_open:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self.path.unlink(missing_ok=True)
        return 0
