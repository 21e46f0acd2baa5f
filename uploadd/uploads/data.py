"""Thread-side work on upload data files: hashing one whole, joining parts.

Both block; call them through a Runner.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from uploadd.ingest.blob import Hashes

READ_SIZE = 1024 * 1024


def hash_file(path: Path, md5: bool) -> Hashes:
    """sha256 (and with ``md5`` md5) of a whole file in one read (runs on a
    thread): md5 on a second thread beside it, as the ingest sink runs its
    two lanes (hashlib lets go of the GIL), so a re-read costs the slower sum
    alone."""
    hashes = Hashes.fresh(md5)
    with (
        ThreadPoolExecutor(max_workers=1) as beside,
        path.open("rb", buffering=0) as handle,
    ):
        pending: Future[None] | None = None
        while block := handle.read(READ_SIZE):
            if pending is not None:
                pending.result()
            if hashes.md5 is not None:
                pending = beside.submit(hashes.md5.update, block)
            hashes.sha256.update(block)
            hashes.size += len(block)
        if pending is not None:
            pending.result()
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
