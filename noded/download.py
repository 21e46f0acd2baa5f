"""Serving a stored file's bytes: one byte range at most, 206/416, safe names."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import attrs
from twisted.web import static
from twisted.web.http import datetimeToString, stringToDatetime
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from noded import problems
from noded.digests import repr_digest_field, wants_repr_digest
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


@attrs.frozen
class Validators:
    """What a conditional request compares: the strong entity tag (the
    file's sha256, quoted) and the modification time (whole seconds, as
    HTTP dates carry them)."""

    etag: bytes | None
    modified: int

    def not_modified(self, request: IRequest) -> bool:
        """``If-None-Match`` (weak comparison; it wins over the date) or
        ``If-Modified-Since`` says the client's copy is current (RFC 9110
        13.1.2, 13.1.3)."""
        match = request.getHeader(b"if-none-match")
        if match is not None:
            tags = [_opaque(tag) for tag in match.split(b",")]
            return b"*" in tags or (
                self.etag is not None and _opaque(self.etag) in tags
            )
        since = _date(request.getHeader(b"if-modified-since"))
        return since is not None and self.modified <= since

    def range_applies(self, request: IRequest) -> bool:
        """A Range is honoured unless ``If-Range`` names another version:
        an entity tag must match strongly, a date exactly (RFC 9110 13.1.5)."""
        condition = request.getHeader(b"if-range")
        if condition is None:
            return True
        condition = condition.strip()
        if condition.startswith((b'"', b"W/")):
            return self.etag is not None and condition == self.etag
        return _date(condition) == self.modified

    def apply(self, request: IRequest) -> None:
        if self.etag is not None:
            request.setHeader(b"etag", self.etag)
        request.setHeader(b"last-modified", datetimeToString(self.modified))


def _opaque(tag: bytes) -> bytes:
    tag = tag.strip()
    return tag[2:] if tag.startswith(b"W/") else tag


def _date(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(stringToDatetime(value))
    except (ValueError, IndexError, KeyError):
        return None


class BlobResource(Resource):
    """The bytes of one stored file, named and typed for the client, with
    the validators that let a client revalidate or resume it: a strong
    ``ETag`` from its sha256 (when known) and ``Last-Modified``; and, when
    the client asks with ``Want-Repr-Digest``, the ``Repr-Digest`` of the
    whole file from that sha256 (of the whole file for a range too: RFC
    9530 section 3)."""

    isLeaf = True

    def __init__(
        self,
        path: Path,
        filename: str,
        content_type: str,
        sha256: str | None = None,
        modified: float | None = None,
    ) -> None:
        super().__init__()
        self._path = path
        self._filename = filename
        self._content_type = content_type
        self._sha256 = sha256
        self._modified = modified

    def render_GET(self, request: IRequest) -> bytes | int:
        try:
            handle = open(self._path, "rb")  # noqa: SIM115 - the producer closes it
        except FileNotFoundError:
            return problems.apply(request, Problem(404, "the file's bytes are missing"))
        request.setHeader(b"accept-ranges", b"bytes")
        stat = os.fstat(handle.fileno())
        size = stat.st_size
        validators = Validators(
            f'"{self._sha256}"'.encode("ascii") if self._sha256 else None,
            int(self._modified if self._modified is not None else stat.st_mtime),
        )
        validators.apply(request)
        if validators.not_modified(request):
            handle.close()
            request.setResponseCode(304)
            return b""
        header = request.getHeader(b"range")
        if header is not None and not validators.range_applies(request):
            header = None
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
        request.setHeader(b"x-content-type-options", b"nosniff")
        if self._sha256 and wants_repr_digest(request.requestHeaders):
            request.setHeader(b"repr-digest", repr_digest_field(self._sha256))
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
