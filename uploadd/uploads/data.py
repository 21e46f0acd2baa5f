"""Thread-side work on upload data files: hashing one whole, joining parts.

Both block; call them through a Runner.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from uploadd.ingest.sink import Hashes

READ_SIZE = 1024 * 1024


def hash_file(path: Path) -> Hashes:
    """sha256 and md5 of a whole file in one read (runs on a thread)."""
    hashes = Hashes()
    with path.open("rb", buffering=0) as handle:
        while block := handle.read(READ_SIZE):
            hashes.sha256.update(block)
            hashes.md5.update(block)
            hashes.size += len(block)
    return hashes


def concatenate(sources: Sequence[Path], target: Path) -> int:
    """Append ``sources`` to ``target`` in the kernel (copy_file_range, which
    shares extents where the filesystem can); return the size. Thread-side."""
    size = 0
    with target.open("r+b") as out:
        out.truncate(0)
        for source in sources:
            with source.open("rb") as handle:
                left = os.fstat(handle.fileno()).st_size
                while left:
                    copied = os.copy_file_range(handle.fileno(), out.fileno(), left)
                    if copied == 0:
                        raise OSError(f"{source} ended early")
                    left -= copied
                    size += copied
        out.flush()
        os.fsync(out.fileno())
    return size
