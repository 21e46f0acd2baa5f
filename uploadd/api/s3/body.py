"""An ``aws-chunked`` S3 body as ``request.content``: decoded in front of
the upload's sink.

The ingest gate gives an upload route an :class:`~uploadd.ingest.sink.UploadSink`
as ``request.content``; for an S3 body in ``aws-chunked`` coding the S3
family puts a :class:`ChunkedSink` in front of it, as the form parser
(:class:`~uploadd.ingest.multipart.MultipartSink`) stands in front of it
for ``POST /files``. Twisted writes the raw body; the sink sees only the
decoded bytes, so its size limit, hashes (sha256, md5, a checksum passed
as ``BlobFile(check=...)``) and progress are those of the object.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.internet.defer import Deferred

from uploadd.api.s3.chunked import AwsChunked, Decoded
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.sigv4 import Verified
from uploadd.ingest.blob import Digest
from uploadd.ingest.sink import StreamedContent, UploadSink


@attrs.define(eq=False)
class ChunkedSink(StreamedContent):
    """``request.content`` for an ``aws-chunked`` body ``verified`` describes.

    A body that fails while it streams (a chunk signature, the framing, more
    bytes than declared) is discarded and ``on_reject`` answers it at once;
    one that fails at its end (incomplete, a trailer checksum) makes
    :meth:`complete` raise, for the handler to answer.
    """

    upload: UploadSink
    verified: Verified
    on_reject: Callable[[S3Error], None] = lambda error: None

    received: int = 0
    #: What the body decoded to, once :meth:`complete` checked its end.
    decoded: Decoded | None = None
    _decoder: AwsChunked = attrs.field(init=False)
    _completing: bool = False

    def __attrs_post_init__(self) -> None:
        self._decoder = AwsChunked(self.verified, self.upload.write, self._failed)

    def write(self, data: bytes) -> None:
        self.received += len(data)
        self._decoder.write(data)

    def complete(self) -> Deferred[Digest]:
        """The raw body is all here: its end checked, the sink's digest
        (an S3Error raised if the body fails)."""
        self._completing = True
        self.decoded = self._decoder.finish()
        return self.upload.complete()

    def abort(self) -> None:
        self.upload.abort()

    def _failed(self, error: S3Error) -> None:
        self.upload.abort()
        if not self._completing:
            self.on_reject(error)
