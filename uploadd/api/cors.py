"""Cross-origin access for browsers, origins from config: the headers of
tus, of the IETF resumable-upload draft and RFC 9530's integrity fields
included."""

from __future__ import annotations

import attrs
from twisted.web.iweb import IRequest

_EXPOSED = (
    "Location, Upload-Offset, Upload-Length, Upload-Metadata, Upload-Defer-Length, "
    "Upload-Concat, Upload-Expires, Tus-Resumable, Tus-Version, Tus-Extension, "
    "Tus-Max-Size, Tus-Checksum-Algorithm, Content-Range, Content-Disposition, "
    "Accept-Ranges, ETag, Retry-After, Link, Upload-Complete, Upload-Incomplete, "
    "Upload-Draft-Interop-Version, Upload-Limit, Repr-Digest, Content-Digest"
)
_ALLOWED_HEADERS = (
    "Authorization, Content-Type, Content-Range, Range, X-HTTP-Method-Override, "
    "X-Progress-ID, X-Requested-With, Tus-Resumable, Upload-Offset, Upload-Length, "
    "Upload-Metadata, Upload-Defer-Length, Upload-Concat, Upload-Checksum, "
    "Upload-Complete, Upload-Incomplete, Upload-Draft-Interop-Version, "
    "Content-Disposition, Content-Digest, Repr-Digest, Want-Repr-Digest, "
    "Want-Content-Digest"
)
_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


@attrs.frozen
class Cors:
    origins: frozenset[str] = frozenset()

    def _allowed(self, request: IRequest) -> bytes | None:
        origin: bytes | None = request.getHeader(b"origin")
        if not origin or not self.origins:
            return None
        if "*" in self.origins or origin.decode("latin-1") in self.origins:
            return origin
        return None

    def decorate(self, request: IRequest) -> None:
        """Let an allowed origin read this response and its upload headers."""
        origin = self._allowed(request)
        if origin is None:
            return
        request.setHeader(b"access-control-allow-origin", origin)
        request.setHeader(b"access-control-expose-headers", _EXPOSED.encode())
        request.setHeader(b"vary", b"Origin")

    def preflight(self, request: IRequest) -> bool:
        """Answer a CORS preflight (True), or leave the request alone (False)."""
        if request.method != b"OPTIONS" or not request.getHeader(
            b"access-control-request-method"
        ):
            return False
        if self._allowed(request) is None:
            return False
        request.setHeader(b"access-control-allow-methods", _METHODS.encode())
        request.setHeader(b"access-control-allow-headers", _ALLOWED_HEADERS.encode())
        request.setHeader(b"access-control-max-age", b"86400")
        request.setResponseCode(204)
        return True
