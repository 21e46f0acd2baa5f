"""The ingest gate: decides what to do with a body when its headers arrive.

For an upload route it authenticates, checks scope, size and concurrency, and
gives the request a sink; for any other route a small capped buffer. Every
check happens before a body byte is read, so a refusal costs the client only
its headers (and ``Expect: 100-continue`` is answered only on admission).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from uploadd.api.access import authenticate, query_value, require
from uploadd.api.problems import Problem, too_large
from uploadd.api.root import Router
from uploadd.auth.tokens import Action, Principal, TokenIssuer
from uploadd.ingest.multipart import MultipartSink, boundary_of
from uploadd.ingest.progress import Progress, ProgressBoard, check_key
from uploadd.ingest.sink import BlobFile, FlowLimits, Runner, SinkState, UploadSink
from uploadd.metrics import Metrics
from uploadd.store.blobs import BlobStore

if TYPE_CHECKING:
    from uploadd.ingest.request import StreamingRequest

log = Logger()

UPLOAD_READ_SIZE = 256 * 1024


@attrs.define(eq=False)
class Upload:
    """An admitted upload, attached to its request as ``request.upload``."""

    principal: Principal
    blob_id: str
    sink: UploadSink
    body: UploadSink | MultipartSink
    started: float
    expected: int | None
    progress: Progress | None = None
    file_id: str | None = None
    ended: bool = False


@attrs.frozen
class IngestLimits:
    max_upload_size: int
    max_body_size: int
    max_concurrent: int
    high_water: int
    low_water: int
    fsync: bool


class CappedBuffer(io.BytesIO):
    """``request.content`` for non-upload routes: refuses bodies over a cap."""

    def __init__(self, cap: int, on_overflow: Callable[[Problem], None]) -> None:
        super().__init__()
        self._cap = cap
        self._on_overflow = on_overflow

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self._cap:
            self._on_overflow(too_large(self._cap, "request body"))
            return 0
        return super().write(data)


@attrs.define
class IngestGate:
    _router: Router
    _tokens: TokenIssuer
    _blobs: BlobStore
    _run: Runner
    _progress: ProgressBoard
    _metrics: Metrics
    _clock: IReactorTime
    limits: IngestLimits
    in_flight: int = 0

    def admit(
        self,
        request: StreamingRequest,
        method: bytes,
        target: bytes,
        length: int | None,
    ) -> None:
        """Give ``request`` its content object, or raise the Problem refusing it."""
        found = self._router.match(method, target)
        kind = found.upload_kind if found is not None else None
        if kind is None:
            cap = self.limits.max_body_size
            if length is not None and length > cap:
                raise too_large(cap, "request body")
            request.content = CappedBuffer(cap, request.reject)
            return

        principal = require(
            authenticate(self._tokens, request.requestHeaders, target), Action.CREATE
        )
        limit = self.limits.max_upload_size
        if length is not None and length > limit:
            raise too_large(limit)
        if self.in_flight >= self.limits.max_concurrent:
            raise Problem(
                503,
                f"{self.in_flight} uploads are in progress, the most this server "
                "takes at once; retry shortly",
                headers={"Retry-After": "5"},
            )
        boundary = None
        if kind == "multipart":
            ctype = request.requestHeaders.getRawHeaders(b"content-type")
            boundary = boundary_of(ctype[0] if ctype else None)
        key = self._progress_key(request, target)

        blob_id = uuid.uuid4().hex
        transport: Any = request.channel.transport
        sink = UploadSink(
            BlobFile(self._blobs.staging_path(blob_id), self.limits.fsync),
            self._run,
            transport,
            FlowLimits(self.limits.high_water, self.limits.low_water, limit),
            on_progress=lambda n: self._advanced(request, n),
            on_reject=request.reject,
        )
        body: UploadSink | MultipartSink = sink
        if boundary is not None:
            body = MultipartSink(sink, boundary, on_reject=request.reject)
        upload = Upload(
            principal=principal,
            blob_id=blob_id,
            sink=sink,
            body=body,
            started=self._clock.seconds(),
            expected=length,
        )
        if key is not None:
            upload.progress = self._progress.start(key, principal.user_id, length)
        request.content = upload.body
        # Larger socket reads for bodies: fewer trips through the reactor and
        # the HTTP parser per gigabyte (Twisted reads 64 KiB by default).
        transport.bufferSize = UPLOAD_READ_SIZE
        request.upload = upload
        self.in_flight += 1
        self._metrics.uploads_in_flight.inc()
        request.notifyFinish().addBoth(lambda _: self.release(upload))

    def _progress_key(self, request: StreamingRequest, target: bytes) -> str | None:
        header = request.requestHeaders.getRawHeaders(b"x-progress-id")
        key = header[0].decode("latin-1") if header else None
        key = (
            key
            or query_value(target, "UploadKey")
            or query_value(target, "X-Progress-ID")
        )
        return check_key(key) if key else None

    def _advanced(self, request: StreamingRequest, size: int) -> None:
        self._metrics.bytes_received.inc(size)
        upload = request.upload
        if upload is not None and upload.progress is not None:
            self._progress.advance(upload.progress, upload.body.received)
        # Reading may be paused while the disk catches up; progress on disk is
        # progress, so the idle timeout starts again.
        request.channel.resetTimeout()

    def stored(self, upload: Upload, file_id: str) -> None:
        """The handler recorded the upload as ``file_id``."""
        upload.file_id = file_id
        self._metrics.upload_seconds.observe(self._clock.seconds() - upload.started)

    def release(self, upload: Upload) -> None:
        """The request ended, however it ended: account for it once."""
        if upload.ended:
            return
        upload.ended = True
        self.in_flight -= 1
        self._metrics.uploads_in_flight.dec()
        if upload.sink.state is not SinkState.DONE:
            upload.body.abort()
        outcome = "stored" if upload.file_id else "failed"
        self._metrics.uploads.labels(outcome).inc()
        if upload.progress is not None:
            error = None if upload.file_id else "the upload did not complete"
            self._progress.end(upload.progress, upload.file_id, error)
