"""The ``aws-chunked`` body coding, decoded and verified as the body streams.

A client that signs its body chunk by chunk, or sends its checksum after
the body, frames the body like HTTP/1.1 chunked coding (inside whatever
transfer coding carries it)::

    <hex size>;chunk-signature=<signature>\\r\\n<data>\\r\\n     (signed modes)
    ...
    0;chunk-signature=<signature>\\r\\n                          (final chunk)
    x-amz-checksum-crc32:<base64>\\r\\n                          (trailer modes)
    x-amz-trailer-signature:<signature>\\r\\n                    (signed trailer)
    \\r\\n

and, unsigned (``STREAMING-UNSIGNED-PAYLOAD-TRAILER``), ``<hex size>\\r\\n
<data>\\r\\n ... 0\\r\\n<trailers>\\r\\n``.

:class:`AwsChunked` takes the raw body in slices of any size, forwards each
data byte to the inner ``write`` as soon as it arrives, and holds at most a
chunk's header line and the trailer section: a chunk's sha256 runs as its
data passes, and its signature (``AWS4-HMAC-SHA256-PAYLOAD``, chained from
the previous one, the seed being the request's) is checked when its data
ends. The first failure stops the forwarding and is reported once through
``on_error``; :meth:`AwsChunked.finish` raises it, or checks what only the
end can tell (the final chunk came, the decoded length, the trailers and
their signature, the declared checksum) and returns the verified checksums.

S3 asks signed chunks but the last to be at least 8 KiB; that is a
performance rule, not a check of authenticity, and is not enforced here.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from uploadd.api.s3.checksums import Checksum, algorithm_of, decode_value, mismatch
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.sigv4 import (
    SIGNED_CHUNKS,
    STREAMING_PAYLOAD_TRAILER,
    TRAILERS,
    Verified,
)

#: The longest chunk header line taken (a size, a signature, extensions).
MAX_LINE = 4096
#: The largest trailer section taken.
MAX_TRAILERS = 16 * 1024

TRAILER_SIGNATURE = "x-amz-trailer-signature"
_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")


class _State(enum.Enum):
    HEADER = "chunk header"
    DATA = "chunk data"
    DATA_END = "CRLF after chunk data"
    TRAILER = "trailer section"
    DONE = "done"


@attrs.frozen
class Decoded:
    """An ``aws-chunked`` body decoded whole: its decoded length and the
    checksums its trailers gave and its bytes matched (algorithm -> digest)."""

    length: int
    checksums: Mapping[str, bytes] = MappingProxyType({})


def _framing(message: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked body: {message}")


def _bad_signature(what: str) -> S3Error:
    return S3Error(
        "SignatureDoesNotMatch",
        f"The {what} signature we calculated does not match the signature you "
        "provided. Check your key and signing method.",
    )


@attrs.define(eq=False)
class AwsChunked:
    """Decodes an ``aws-chunked`` body for the request ``verified`` describes.

    ``write`` is called with the raw body as it arrives; decoded data goes
    to ``inner`` (an ``UploadSink.write``); ``on_error`` hears the first
    failure, once (fail the upload there: abort the sink, answer the error).
    """

    _verified: Verified
    _inner: Callable[[bytes], Any]
    _on_error: Callable[[S3Error], Any] = lambda error: None

    #: Raw bytes taken, and decoded bytes forwarded.
    received: int = 0
    decoded: int = 0
    error: S3Error | None = None
    _state: _State = _State.HEADER
    _line: bytes = b""
    _remaining: int = 0
    _crlf: int = 0
    _final: bool = False
    _sha256: Any = None
    _chunk_signature: str | None = None
    _previous: str = ""
    _trailer_bytes: int = 0
    _trailers: list[tuple[str, str]] = attrs.field(factory=list)
    _checksums: dict[str, Checksum] = attrs.field(factory=dict)
    _result: Decoded | None = None

    def __attrs_post_init__(self) -> None:
        self._previous = self._verified.seed_signature
        for name in self._verified.trailers:
            algorithm = algorithm_of(name)
            if algorithm is not None:
                self._checksums[name] = Checksum(algorithm)

    @property
    def signed(self) -> bool:
        return self._verified.payload in SIGNED_CHUNKS

    # -- the raw body ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.error is not None:
            return
        try:
            self._feed(bytes(data))
        except S3Error as error:
            self._fail(error)

    def finish(self) -> Decoded:
        """The body has ended: what it decoded to, or the S3Error it fails
        with (``IncompleteBody`` when it ended early)."""
        if self._result is not None:
            return self._result
        if self.error is None:
            try:
                self._result = self._end()
                return self._result
            except S3Error as error:
                self._fail(error)
        assert self.error is not None
        raise self.error

    # -- parsing ---------------------------------------------------------------

    def _fail(self, error: S3Error) -> None:
        if self.error is None:
            self.error = error
            self._on_error(error)

    def _feed(self, data: bytes) -> None:
        pos, size = 0, len(data)
        while pos < size:
            state = self._state
            if state is _State.DATA:
                take = min(self._remaining, size - pos)
                piece = data if take == size else data[pos : pos + take]
                pos += take
                self._data(piece)
            elif state is _State.DATA_END:
                pos = self._expect_crlf(data, pos)
            elif state is _State.DONE:
                raise _framing("bytes after the end of the body")
            else:
                pos = self._take_line(data, pos)

    def _take_line(self, data: bytes, pos: int) -> int:
        """Add to the line being read; act on it once it is whole."""
        limit = MAX_LINE if self._state is _State.HEADER else MAX_TRAILERS
        end = data.find(b"\n", pos)
        piece = data[pos:] if end < 0 else data[pos : end + 1]
        if len(self._line) + len(piece) > limit:
            raise _framing(f"a {self._state.value} line is too long")
        self._line += piece
        if end < 0:
            return len(data)
        line, self._line = self._line, b""
        if not line.endswith(b"\r\n"):
            raise _framing(f"a {self._state.value} line does not end in CRLF")
        if self._state is _State.HEADER:
            self._header(line[:-2])
        else:
            self._trailer(line[:-2])
        return end + 1

    def _header(self, line: bytes) -> None:
        size_text, _, extensions = line.partition(b";")
        if not _SIZE.fullmatch(size_text):
            raise _framing("a chunk size is not hexadecimal")
        size = int(size_text, 16)
        signature = None
        for extension in extensions.split(b";") if extensions else ():
            name, _, value = extension.partition(b"=")
            if name.strip() == b"chunk-signature":
                signature = value.strip().decode("latin-1")
        if self.signed and signature is None:
            raise _bad_signature("chunk")
        self._chunk_signature = signature
        declared = self._verified.decoded_length
        if declared is not None and self.decoded + size > declared:
            raise _framing(
                "the chunks carry more than x-amz-decoded-content-length "
                f"({declared}) bytes"
            )
        self._sha256 = hashlib.sha256() if self.signed else None
        self._remaining = size
        if size == 0:
            self._final = True
            self._chunk_ended()
            self._state = _State.TRAILER
        else:
            self._state = _State.DATA

    def _data(self, piece: bytes) -> None:
        self._remaining -= len(piece)
        self.decoded += len(piece)
        if self._sha256 is not None:
            self._sha256.update(piece)
        for checksum in self._checksums.values():
            checksum.update(piece)
        self._inner(piece)
        if self._remaining == 0:
            self._chunk_ended()
            self._state = _State.DATA_END

    def _chunk_ended(self) -> None:
        """Check the signature of the chunk whose data just ended."""
        if not self.signed:
            return
        expected = self._verified.chunk_signature(
            self._previous, self._sha256.hexdigest()
        )
        if not hmac.compare_digest(
            expected.encode(), (self._chunk_signature or "").encode()
        ):
            raise _bad_signature("chunk")
        self._previous = expected

    def _expect_crlf(self, data: bytes, pos: int) -> int:
        while pos < len(data) and self._crlf < 2:
            if data[pos] != b"\r\n"[self._crlf]:
                raise _framing("chunk data is not followed by CRLF")
            self._crlf += 1
            pos += 1
        if self._crlf == 2:
            self._crlf = 0
            self._state = _State.HEADER
        return pos

    def _trailer(self, line: bytes) -> None:
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > MAX_TRAILERS:
            raise _framing("the trailer section is too long")
        if not line:
            self._state = _State.DONE
            return
        if self._verified.payload not in TRAILERS:
            raise _framing("trailing headers in a body declared without them")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise _framing("a trailing header has no ':'")
        self._trailers.append((name.strip().lower(), value.strip()))

    # -- the end -------------------------------------------------------------

    def _end(self) -> Decoded:
        # A body whose trailer section lacks only its closing empty line is
        # taken whole: what it carries is checked all the same, as S3's
        # own readers allow clients that leave that line out.
        if not (
            self._state is _State.DONE
            or (self._state is _State.TRAILER and not self._line)
        ):
            where = (
                "in the trailer section"
                if self._final
                else (f"in a {self._state.value}, before the final 0-length chunk")
            )
            raise S3Error(
                "IncompleteBody", f"The request body terminated unexpectedly {where}"
            )
        declared = self._verified.decoded_length
        if declared is not None and self.decoded != declared:
            raise S3Error(
                "IncompleteBody",
                "You did not provide the number of bytes specified by the "
                f"x-amz-decoded-content-length HTTP header ({self.decoded} of "
                f"{declared})",
            )
        trailers = dict(self._trailers)
        if len(trailers) != len(self._trailers):
            raise _framing("a trailing header is repeated")
        self._check_trailer_signature()
        checksums: dict[str, bytes] = {}
        for name, checksum in self._checksums.items():
            if name not in trailers:
                raise S3Error(
                    "InvalidRequest",
                    f"The x-amz-trailer header declares {name}, "
                    "which the body does not carry",
                )
            expected = decode_value(checksum.name, trailers[name])
            if checksum.digest() != expected:
                raise mismatch(checksum.name)
            checksums[checksum.name] = expected
        undeclared = set(trailers) - set(self._checksums) - {TRAILER_SIGNATURE}
        if undeclared:
            raise S3Error(
                "InvalidRequest",
                "The body carries trailing headers its x-amz-trailer header does "
                f"not declare: {', '.join(sorted(undeclared))}",
            )
        return Decoded(self.decoded, MappingProxyType(checksums))

    def _check_trailer_signature(self) -> None:
        """The trailers of a signed-trailer body are signed, chained from the
        final chunk's signature, over their ``name:value\\n`` lines."""
        signatures = [v for n, v in self._trailers if n == TRAILER_SIGNATURE]
        if self._verified.payload != STREAMING_PAYLOAD_TRAILER:
            if signatures:
                raise _framing(f"{TRAILER_SIGNATURE} in a body without signed trailers")
            return
        if len(signatures) != 1:
            raise _bad_signature("trailer")
        canonical = "".join(
            f"{name}:{value}\n"
            for name, value in self._trailers
            if name != TRAILER_SIGNATURE
        )
        expected = self._verified.trailer_signature(
            self._previous, hashlib.sha256(canonical.encode("latin-1")).hexdigest()
        )
        if not hmac.compare_digest(expected.encode(), signatures[0].encode()):
            raise _bad_signature("trailer")
