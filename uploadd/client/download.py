"""One file down: its bytes go into ``NAME.ID.part`` beside the target, a run
after an interruption asks only for what the part lacks (``Range``), and the
part becomes the target once its sha256 is the one the server reports.
``GET /files/{id}/content`` redirects to a storage node holding a copy
(a signed URL); the redirect is followed, each try anew."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from http.client import HTTPResponse
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import attrs

from uploadd.client.http import (
    BLOCK,
    NETWORK_ERRORS,
    Cancelled,
    HTTPFailure,
    get_stream,
)
from uploadd.client.progress import Meter
from uploadd.client.upload import DELAYS, Server, TransferError, wait

if TYPE_CHECKING:
    from _hashlib import HASH as Hash

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-\d+/(\d+|\*)$")


class Exists(Exception):
    """The target is there already; nothing was fetched."""


@attrs.frozen
class Downloaded:
    path: Path
    #: Where this run began: 0, or the size of an earlier run's part.
    resumed_at: int


def target_of(output: Path | None, filename: str) -> Path:
    """``output``, or the file's own name in ``output`` (a directory) or here;
    a name from the server never leaves that directory."""
    name = Path(filename).name or "download"
    if output is None:
        return Path(name)
    return output / name if output.is_dir() else output


def _hash_of(path: Path, length: int) -> Hash:
    hasher = hashlib.sha256()
    with path.open("rb") as source:
        while length:
            block = source.read(min(1 << 20, length))
            if not block:
                break
            hasher.update(block)
            length -= len(block)
    return hasher


@attrs.define
class Download:
    server: Server
    file_id: str
    output: Path | None
    cancel: threading.Event
    track: Callable[[str, int, int], Meter]

    def run(self) -> Downloaded:
        try:
            found = self.server.file(self.file_id)
        except HTTPFailure as error:
            raise TransferError(str(error)) from None
        size, sha256 = int(found["size"]), str(found["sha256"])
        target = target_of(self.output, str(found.get("filename") or self.file_id))
        if target.exists():
            raise Exists(f"{target} exists; remove it or give -o another path")
        # The id in its name: another file (a version) of the same name
        # downloaded here has its own part.
        part = target.with_name(f"{target.name}.{self.file_id}.part")
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        meter = self.track(target.name, size, have)
        if have:
            meter.note(f"resuming at byte {have} of {size}")
        else:
            meter.note(f"downloading {size} bytes")
        hasher = _hash_of(part, have) if have else hashlib.sha256()
        try:
            hasher = self._fetch(part, have, size, hasher, meter)
        finally:
            meter.close()
        if hasher.hexdigest() != sha256:
            part.unlink()
            raise TransferError(
                f"{target}: the bytes received have sha256 {hasher.hexdigest()},"
                f" the server's file {sha256}; the partial file was removed"
            )
        part.rename(target)
        meter.note(f"saved as {target}, sha256 verified")
        return Downloaded(target, have)

    def _fetch(
        self, part: Path, have: int, size: int, hasher: Hash, meter: Meter
    ) -> Hash:
        """Fill ``part`` from ``have`` to ``size``, trying again from where
        it got after a failure; the sha256 of all of it."""
        url = f"{self.server.base}/files/{self.file_id}/content"
        failures = 0
        with part.open("ab", buffering=0) as sink:
            while have < size:
                headers = self.server.headers()
                if have:
                    headers["Range"] = f"bytes={have}-"
                try:
                    with get_stream(url, headers) as response:
                        if response.status == 206:
                            self._check_range(response.getheader("Content-Range"), have)
                        elif have:  # the whole file, not the rest of it
                            sink.truncate(0)
                            hasher, have = hashlib.sha256(), 0
                            meter.update(0)
                        have = self._copy(response, sink, have, size, hasher, meter)
                    if have >= size:
                        break
                    reason = "the answer ended early"
                except NETWORK_ERRORS as error:
                    reason = str(error) or type(error).__name__
                except HTTPFailure as error:
                    if error.status < 500:
                        raise TransferError(str(error)) from None
                    reason = str(error)
                failures += 1
                if failures > len(DELAYS):
                    raise TransferError(
                        f"{url}: {reason}; {have} of {size} bytes are in {part}:"
                        " run the same command again to resume"
                    )
                wait(self.cancel, DELAYS[failures - 1])
            os.fsync(sink.fileno())
        return hasher

    @staticmethod
    def _check_range(header: str | None, have: int) -> None:
        match = _CONTENT_RANGE.match(header or "")
        if match is None or int(match.group(1)) != have:
            raise TransferError(
                f"asked for the bytes from {have}, got Content-Range {header!r}"
            )

    def _copy(
        self,
        response: HTTPResponse,
        sink: BinaryIO,
        have: int,
        size: int,
        hasher: Hash,
        meter: Meter,
    ) -> int:
        """Append the answer's bytes to the part; how many it holds then."""
        while have < size:
            if self.cancel.is_set():
                raise Cancelled()
            block = response.read(min(BLOCK, size - have))
            if not block:
                break
            sink.write(block)
            hasher.update(block)
            have += len(block)
            meter.update(have)
        return have
