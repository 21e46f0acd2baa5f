"""The web interface: ``/`` and its assets under ``/static/``, all served
from the package (no CDN; it works offline). tus-js-client is vendored in
``web/vendor/`` with its licence."""

from __future__ import annotations

from importlib import resources
from typing import ClassVar

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from uploadd.api import problems

TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".txt": b"text/plain; charset=utf-8",
}
#: Only the shell's own assets and the vendored libraries are fetched.
CSP = (
    b"default-src 'self'; img-src 'self' data: blob: http: https:; "
    b"connect-src 'self' ws: wss:; frame-src 'self'; object-src 'none'; "
    b"base-uri 'none'"
)


def asset(name: str) -> bytes | None:
    """The bytes of ``uploadd/web/<name>``; None for anything else."""
    folder = resources.files("uploadd").joinpath("web")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    found = folder.joinpath(*parts)
    return found.read_bytes() if found.is_file() else None


@attrs.define(slots=False)
class WebAPI:
    app = Klein()
    problems.install(app)
    PAGE: ClassVar[str] = "index.html"

    @app.route("/", methods=["GET"])
    def index(self, request: IRequest) -> bytes:
        return self._send(request, self.PAGE)

    @app.route("/static/<path:name>", methods=["GET"])
    def static(self, request: IRequest, name: str) -> bytes:
        return self._send(request, name)

    def _send(self, request: IRequest, name: str) -> bytes:
        return send_asset(request, name)


def send_asset(request: IRequest, name: str) -> bytes:
    """Answer ``request`` with ``uploadd/web/<name>``, or a 404."""
    body = asset(name)
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if body is None or suffix not in TYPES:
        raise problems.not_found(f"no such asset: {name}")
    request.setHeader(b"content-type", TYPES[suffix])
    request.setHeader(b"content-length", b"%d" % len(body))
    request.setHeader(b"cache-control", b"no-cache")
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"content-security-policy", CSP)
    return body
