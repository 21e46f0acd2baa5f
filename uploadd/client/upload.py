"""One file up over tus 1.0.0: create the upload, PATCH it in chunks (each
with a sha256 ``Upload-Checksum`` the server checks), and on the next run
continue from the offset the server reports (HEAD) for the URL kept in
``uploads.json``. A finished upload is the file of the same id: its sha256
(``GET /files/{id}``) must be the local file's. A file sent whole before
(unchanged, and still on the server) is not sent again."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import attrs

from uploadd.client.http import (
    NETWORK_ERRORS,
    Cancelled,
    HTTPFailure,
    Reply,
    detail_of,
    expect,
    request,
    send_file,
)
from uploadd.client.progress import Meter
from uploadd.client.state import Uploads, fingerprint

if TYPE_CHECKING:
    from _hashlib import HASH as Hash

TUS = "1.0.0"
#: Seconds to wait before trying again after a failure, one per try.
DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)
#: Answers after which a HEAD tells where to go on: an offset that moved
#: (409), a PATCH still running there (423), a chunk that arrived damaged (460).
AGAIN = frozenset({409, 423, 460})
#: A kept upload the server no longer has for us.
GONE = frozenset({403, 404, 410})


class TransferError(Exception):
    """A transfer that could not finish; the message says what to do."""


@attrs.frozen
class Server:
    """The API at ``base`` as one signed-in user."""

    base: str
    username: str
    token: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}

    def tus(self, **extra: str) -> dict[str, str]:
        return self.headers(**{"Tus-Resumable": TUS, **extra})

    def file(self, file_id: str) -> dict[str, Any]:
        """``GET /files/{id}``."""
        url = f"{self.base}/files/{file_id}"
        found: dict[str, Any] = expect(
            request("GET", url, self.headers()), "GET", url, 200
        ).json()
        return found


@attrs.frozen
class Uploaded:
    path: Path
    file_id: str
    url: str
    #: Where this run began: 0, or the offset of an earlier run's upload.
    resumed_at: int


@attrs.define
class RunningHash:
    """The sha256 of a file's first ``position`` bytes, grown as they are
    acknowledged; bytes not seen in passing are read from the file."""

    path: Path
    position: int = 0
    hasher: Hash = attrs.Factory(hashlib.sha256)

    def advance_to(self, offset: int) -> None:
        with self.path.open("rb") as source:
            source.seek(self.position)
            while self.position < offset:
                block = source.read(min(1 << 20, offset - self.position))
                if not block:
                    raise TransferError(f"{self.path} got shorter while it was sent")
                self.hasher.update(block)
                self.position += len(block)


def wait(cancel: threading.Event, seconds: float) -> None:
    if cancel.wait(seconds):
        raise Cancelled()


@attrs.define
class TusUpload:
    """One local file's upload, from finding or creating it to the check."""

    server: Server
    path: Path
    chunk: int
    uploads: Uploads
    cancel: threading.Event
    track: Callable[[str, int, int], Meter]
    size: int = 0
    url: str = ""
    key: str = ""
    whole: RunningHash = attrs.field(init=False)

    def run(self) -> Uploaded:
        self.size = self.path.stat().st_size
        self.key = fingerprint(self.server.base, self.server.username, self.path)
        kept = self.uploads.get(self.key)
        offset = None
        if kept is not None and kept.done:
            found = self._already_stored(kept.url)
            if found is not None:
                return found
        elif kept is not None:
            offset = self._offset_of(kept.url)
        resuming = kept is not None and offset is not None
        if kept is not None and offset is not None:
            self.url = kept.url
        else:  # nothing kept, or nothing to continue: a new upload
            self.url, offset = self._create(), 0
            self.uploads.put(self.key, self.url, self.path)
        self.whole = RunningHash(self.path)
        self.whole.advance_to(offset)
        meter = self.track(self.path.name, self.size, offset)
        if resuming:
            meter.note(f"resuming at byte {offset} of {self.size}")
        else:
            meter.note(f"uploading {self.size} bytes to {self.url}")
        try:
            self._send(offset, meter)
            self._check(self._file_id())
        finally:
            meter.close()
        self.uploads.put(self.key, self.url, self.path, done=True)
        meter.note("stored, sha256 verified")
        return self._uploaded(offset)

    def _file_id(self) -> str:
        """A finished tus upload is the file of the same id."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def _uploaded(self, resumed_at: int) -> Uploaded:
        file_id = self._file_id()
        url = f"{self.server.base}/files/{file_id}"
        return Uploaded(self.path, file_id, url, resumed_at)

    def _already_stored(self, url: str) -> Uploaded | None:
        """The file an earlier run stored from this very local file, if the
        server still has it with the same sha256: nothing is sent again."""
        self.url = url
        try:
            stored = self.server.file(self._file_id()).get("sha256")
        except HTTPFailure as error:
            if error.status not in GONE:
                raise
            return None
        self.whole = RunningHash(self.path)
        self.whole.advance_to(self.size)
        if stored != self.whole.hasher.hexdigest():
            return None
        self.track(self.path.name, self.size, self.size).note(
            f"already stored as {self.server.base}/files/{self._file_id()},"
            " sha256 verified"
        )
        return self._uploaded(self.size)

    # -- the protocol ------------------------------------------------------------

    def _offset_of(self, url: str) -> int | None:
        """How much of a kept upload the server holds; None when it cannot
        be continued (gone, or for a file of another length: dropped)."""
        reply = request("HEAD", url, self.server.tus())
        if reply.status in GONE:
            return None
        expect(reply, "HEAD", url, 200)
        if reply.header("Upload-Length") != str(self.size):
            request("DELETE", url, self.server.tus())  # termination
            return None
        return int(reply.header("Upload-Offset") or 0)

    def _create(self) -> str:
        url = f"{self.server.base}/uploads/"
        filetype = mimetypes.guess_type(self.path.name)[0] or "application/octet-stream"
        metadata = ",".join(
            f"{key} {base64.b64encode(value.encode()).decode()}"
            for key, value in (("filename", self.path.name), ("filetype", filetype))
        )
        reply = expect(
            request(
                "POST",
                url,
                self.server.tus(
                    **{"Upload-Length": str(self.size), "Upload-Metadata": metadata}
                ),
            ),
            "POST",
            url,
            201,
        )
        location = reply.header("Location")
        if not location:
            raise TransferError(f"POST {url}: the answer names no upload")
        return urljoin(url, location)

    def _send(self, offset: int, meter: Meter) -> None:
        """PATCH from ``offset`` to the end; after a failure, ask the server
        where it stands and go on from there, a few times."""
        failures = 0
        while offset < self.size:
            if self.cancel.is_set():
                raise Cancelled()
            try:
                reply = self._patch(offset, meter)
            except NETWORK_ERRORS as error:
                reason: str = str(error) or type(error).__name__
            else:
                if reply.status == 204:
                    offset = int(reply.header("Upload-Offset") or offset)
                    meter.update(offset)
                    failures = 0
                    continue
                if reply.status not in AGAIN:
                    expect(reply, "PATCH", self.url, 204)
                reason = f"{reply.status} {detail_of(reply.body)}"
            failures += 1
            if failures > len(DELAYS):
                raise TransferError(
                    f"{self.url}: {reason}; the upload stays at byte {offset}:"
                    " run the same command again to resume"
                )
            wait(self.cancel, DELAYS[failures - 1])
            try:
                offset = self._offset_of(self.url) or 0
            except NETWORK_ERRORS:
                continue
            meter.update(offset)

    def _patch(self, offset: int, meter: Meter) -> Reply:
        """One chunk from ``offset``; the running hash takes it when the
        server keeps all of it."""
        length = min(self.chunk, self.size - offset)
        chunk_hash = hashlib.sha256()
        whole = self.whole
        candidate = whole.hasher.copy() if whole.position == offset else None
        with self.path.open("rb") as source:
            source.seek(offset)
            left = length
            while left:
                block = source.read(min(1 << 20, left))
                if not block:
                    raise TransferError(f"{self.path} got shorter while it was sent")
                chunk_hash.update(block)
                if candidate is not None:
                    candidate.update(block)
                left -= len(block)
            source.seek(offset)
            checksum = base64.b64encode(chunk_hash.digest()).decode()
            reply = send_file(
                "PATCH",
                self.url,
                self.server.tus(
                    **{
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": str(offset),
                        "Upload-Checksum": f"sha256 {checksum}",
                    }
                ),
                source,
                length,
                lambda sent: meter.update(offset + sent),
                self.cancel,
            )
        kept = reply.header("Upload-Offset")
        if (
            reply.status == 204
            and candidate is not None
            and kept == str(offset + length)
        ):
            whole.hasher, whole.position = candidate, offset + length
        return reply

    def _check(self, file_id: str) -> None:
        """The stored file's sha256 is the local file's."""
        self.whole.advance_to(self.size)
        local = self.whole.hasher.hexdigest()
        try:
            stored = self.server.file(file_id).get("sha256")
        except HTTPFailure as error:
            raise TransferError(f"the upload finished but its file: {error}") from None
        if stored != local:
            raise TransferError(
                f"the server stored {file_id} with sha256 {stored}; the local"
                f" file's is {local}"
            )
