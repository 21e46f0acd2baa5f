"""Serving a stored file's bytes: one byte range at most, 206/416, safe names."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

from twisted.web import static
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from noded import problems
from noded.problems import Problem

_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
_POSITION_DIGITS = 19
_BEYOND = 10**_POSITION_DIGITS


class Unsatisfiable(Exception):
    pass


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive for one byte range, None to serve it all.

    Several ranges, or a form this does not know, are served whole (RFC 9110
    lets a server ignore Range); a well-formed range past the end raises
    Unsatisfiable.
    """
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = _position(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable()
        return max(0, size - suffix), size - 1
    start = _position(first)
    if last and _position(last) < start:
        return None
    if start >= size:
        raise Unsatisfiable()
    return start, min(_position(last) if last else size - 1, size - 1)


def _position(digits: str) -> int:
    """A byte position, capped where it is past any file: a client may send
    thousands of digits, more than ``int()`` converts (or needs to)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _POSITION_DIGITS else _BEYOND


def content_disposition(filename: str, inline: bool = False) -> str:
    """A Content-Disposition with an ASCII fallback and the UTF-8 name (RFC 6266)."""
    fallback = "".join(
        c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in filename
    )
    kind = "inline" if inline else "attachment"
    return (
        f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
    )


class BlobResource(Resource):
    """The bytes of one stored file, named and typed for the client."""

    isLeaf = True

    def __init__(
        self, path: Path, filename: str, content_type: str, etag: str | None = None
    ) -> None:
        super().__init__()
        self._path = path
        self._filename = filename
        self._content_type = content_type
        self._etag = etag

    def render_GET(self, request: IRequest) -> bytes | int:
        try:
            handle = open(self._path, "rb")  # noqa: SIM115 - the producer closes it
        except FileNotFoundError:
            return problems.apply(request, Problem(404, "the file's bytes are missing"))
        request.setHeader(b"accept-ranges", b"bytes")
        size = os.fstat(handle.fileno()).st_size
        header = request.getHeader(b"range")
        span = None
        if header is not None:
            try:
                span = parse_range(header.decode("latin-1"), size)
            except Unsatisfiable:
                handle.close()
                request.setHeader(b"content-range", f"bytes */{size}".encode("ascii"))
                return problems.apply(
                    request,
                    Problem(
                        416,
                        f"the range {header.decode('latin-1')[:80]} is outside "
                        f"the file's {size} bytes",
                    ),
                )
        request.setHeader(b"content-type", self._content_type.encode("latin-1"))
        request.setHeader(
            b"content-disposition", content_disposition(self._filename).encode("ascii")
        )
        if self._etag:
            request.setHeader(b"etag", f'"{self._etag}"'.encode("ascii"))
        request.setHeader(b"x-content-type-options", b"nosniff")
        if span is None:
            request.setHeader(b"content-length", b"%d" % size)
            producer: static.StaticProducer = static.NoRangeStaticProducer(
                request, handle
            )
        else:
            first, last = span
            request.setResponseCode(206)
            request.setHeader(
                b"content-range", f"bytes {first}-{last}/{size}".encode("ascii")
            )
            request.setHeader(b"content-length", b"%d" % (last - first + 1))
            producer = static.SingleRangeStaticProducer(
                request, handle, first, last - first + 1
            )
        if request.method == b"HEAD":
            handle.close()
            return b""
        producer.start()
        return NOT_DONE_YET

    render_HEAD = render_GET
