"""Streaming multipart/form-data: the ``file`` part flows into an UploadSink.

The parser (python-multipart) sees each socket read as it arrives; bytes of
the file part go straight to the sink, small text fields are kept (bounded),
nothing is buffered whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from python_multipart.multipart import MultipartParser, parse_options_header
from twisted.internet.defer import Deferred

from uploadd import errors
from uploadd.ingest.blob import Digest
from uploadd.ingest.sink import StreamedContent, UploadSink

FIELD_LIMIT = 64 * 1024
HEADER_LIMIT = 8 * 1024


def boundary_of(content_type: bytes | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type, or a 400 problem."""
    if not content_type:
        raise errors.Invalid("multipart upload without a Content-Type header")
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise errors.Unsupported(
            "expected a multipart/form-data body with a 'file' part"
        )
    boundary: bytes | None = options.get(b"boundary")
    if not boundary:
        raise errors.Invalid("the multipart Content-Type has no boundary")
    return boundary


@attrs.define(eq=False)
class MultipartSink(StreamedContent):
    """``request.content`` for ``POST /files``: parses while the body arrives."""

    upload: UploadSink
    boundary: bytes
    on_reject: Callable[[errors.UploaddError], None] = lambda error: None
    file_field: bytes = b"file"

    fields: dict[str, str] = attrs.field(factory=dict)
    filename: str | None = None
    content_type: str | None = None
    received: int = 0
    _error: errors.UploaddError | None = None
    _ended: bool = False
    _parser: Any = None
    _part_headers: dict[bytes, bytes] = attrs.field(factory=dict)
    _header_field: bytes = b""
    _header_value: bytes = b""
    _part_kind: str = "skip"
    _part_name: str = ""
    _part_value: bytearray = attrs.field(factory=bytearray)
    _field_bytes: int = 0

    def __attrs_post_init__(self) -> None:
        self._parser = MultipartParser(
            self.boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    # -- file-like face ------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self._error is not None:
            return
        try:
            self._parser.write(data)
        except errors.UploaddError as refused:
            self._error = refused
        except Exception as error:
            self._error = errors.Invalid(f"malformed multipart body: {error}")
        else:
            return
        self.upload.abort()
        self.on_reject(self._error)

    # -- handler face --------------------------------------------------------

    def complete(self) -> Deferred[Digest]:
        """The whole body is here: the digest of the file part, or a problem."""
        if self._error is None:
            if not self._ended:
                self._error = errors.Invalid("the multipart body ended early")
            elif self.filename is None:
                self._error = errors.Invalid("the multipart body has no 'file' part")
        if self._error is not None:
            self.upload.abort()
            raise self._error
        return self.upload.complete()

    def abort(self) -> None:
        self.upload.abort()

    # -- parser callbacks ----------------------------------------------------

    def _part_begin(self) -> None:
        self._part_headers = {}
        self._header_field = self._header_value = b""

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]
        self._check_header()

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self._header_field) + len(self._header_value) > HEADER_LIMIT:
            raise errors.Invalid(
                f"a multipart part header exceeds {HEADER_LIMIT} bytes"
            )

    def _header_end(self) -> None:
        self._part_headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(
            self._part_headers.get(b"content-disposition", b"")
        )
        name = options.get(b"name", b"")
        if disposition != b"form-data" or not name:
            raise errors.Invalid("a multipart part lacks a form-data name")
        self._part_name = name.decode("utf-8", "replace")
        if name == self.file_field and b"filename" in options:
            if self.filename is not None:
                raise errors.Invalid("send one 'file' part per request")
            self._part_kind = "file"
            self.filename = options[b"filename"].decode("utf-8", "replace")
            ctype = self._part_headers.get(b"content-type")
            self.content_type = ctype.decode("latin-1").strip() if ctype else None
        else:
            self._part_kind = "field"
            self._part_value = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_kind == "file":
            self.upload.write(data[start:end])
            return
        self._field_bytes += end - start
        if self._field_bytes > FIELD_LIMIT:
            raise errors.TooLarge(FIELD_LIMIT, "set of form fields besides 'file'")
        self._part_value += data[start:end]

    def _part_end(self) -> None:
        if self._part_kind == "field":
            self.fields[self._part_name] = self._part_value.decode("utf-8", "replace")
        self._part_kind = "skip"

    def _end(self) -> None:
        self._ended = True
