"""Malformed HTTP requests and the answer each must get, for both daemons.

One table, sent in memory by tests/unit/test_malformed_http.py and over real
sockets to real processes by tests/integration/test_malformed_http.py.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

HUGE = "9" * 5000  # more digits than int() converts


@attrs.frozen
class Target:
    """What a daemon under test offers the requests of the table."""

    daemon: str  # "uploadd" or "noded"
    get: str  # a path this daemon answers 200 to (with ``auth``)
    auth: str = ""  # "Authorization: ...\r\n" where the daemon wants it
    upload: str = ""  # a tus upload's path (uploadd)

    @property
    def body_line(self) -> str:
        """A request line that takes a body: an upload on uploadd, a download
        on noded (whose only routes are GET and HEAD)."""
        if self.daemon == "uploadd":
            return "PUT /files/body.bin HTTP/1.1"
        return f"GET {self.get} HTTP/1.1"


@attrs.frozen
class Case:
    name: str
    status: int
    build: Callable[[Target], bytes]
    daemons: tuple[str, ...] = ("uploadd", "noded")
    #: the Location a redirect must carry
    location: Callable[[Target], str] | None = None

    def __str__(self) -> str:
        return self.name


def _get(t: Target, *headers: str, path: str | None = None) -> bytes:
    lines = [f"GET {path or t.get} HTTP/1.1", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n" + t.auth + "\r\n").encode()


def _body(t: Target, *headers: str, body: str = "") -> bytes:
    lines = [t.body_line, "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n" + t.auth + "\r\n" + body).encode()


def _tus(t: Target, method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Tus-Resumable: 1.0.0"]
    return ("\r\n".join([*lines, *headers]) + "\r\n" + t.auth + "\r\n").encode()


def _create(*headers: str) -> Callable[[Target], bytes]:
    return lambda t: _tus(t, "POST", "/uploads/", "Upload-Length: 10", *headers)


UPLOADD = ("uploadd",)
NODED = ("noded",)

CASES = [
    Case("a header line over 16 KB", 431, lambda t: _get(t, "X-Long: " + "a" * 20000)),
    Case(
        "a head over 16 KB in short lines",
        431,
        lambda t: _get(t, *(f"X-Line-{n}: {'b' * 100}" for n in range(200))),
    ),
    Case("a request line over 16 KB", 414, lambda t: _get(t, path="/" + "c" * 20000)),
    Case("a request line that is not HTTP", 400, lambda t: b"HELLO\r\n\r\n"),
    Case("a header line without a colon", 400, lambda t: _get(t, "no colon here")),
    Case(
        "a chunk size of ffffffffffffffffffff",
        400,
        lambda t: _body(
            t, "Transfer-Encoding: chunked", body="ffffffffffffffffffff\r\nabc"
        ),
    ),
    Case(
        "a chunk size that is not hexadecimal",
        400,
        lambda t: _body(t, "Transfer-Encoding: chunked", body="zz\r\nabc"),
    ),
    Case(
        "a Content-Length that is not a number",
        400,
        lambda t: _body(t, "Content-Length: abc"),
    ),
    Case(
        "Content-Length with Transfer-Encoding",
        400,
        lambda t: _body(
            t, "Content-Length: 3", "Transfer-Encoding: chunked", body="3\r\nabc"
        ),
    ),
    Case(
        "two Content-Lengths",
        400,
        lambda t: _body(t, "Content-Length: 3", "Content-Length: 4", body="abc"),
    ),
    Case(
        "a Transfer-Encoding other than chunked",
        400,
        lambda t: _body(t, "Transfer-Encoding: gzip", body="abc"),
    ),
    Case(
        "a Content-Length of 5000 digits",
        413,
        lambda t: _body(t, f"Content-Length: {HUGE}", body="abc"),
    ),
    Case(
        "HTTP/1.1 without Host",
        400,
        lambda t: f"GET {t.get} HTTP/1.1\r\n{t.auth}\r\n".encode(),
    ),
    Case("two Host headers", 400, lambda t: _get(t, "Host: other")),
    Case(
        "a Host that is no host",
        400,
        lambda t: _get(t).replace(b"Host: test", b"Host: a b/c"),
    ),
    Case("a Range of 5000 digits", 416, lambda t: _get(t, f"Range: bytes={HUGE}-")),
    Case("two Ranges", 400, lambda t: _get(t, "Range: bytes=0-1", "Range: bytes=2-3")),
    Case(
        "two Upload-Offsets",
        400,
        lambda t: _get(t, "Upload-Offset: 0", "Upload-Offset: 5"),
    ),
    Case(
        "a method nobody serves",
        405,
        lambda t: _get(t).replace(b"GET ", b"BREW ", 1),
    ),
    Case(
        "a POST to a node",
        405,
        lambda t: _get(t, "Content-Length: 0").replace(b"GET ", b"POST ", 1),
        NODED,
    ),
    Case(
        "/uploads without its slash",
        308,
        lambda t: _tus(t, "POST", "/uploads?x=1", "Upload-Length: 10"),
        UPLOADD,
        location=lambda t: "/uploads/?x=1",
    ),
    Case(
        "a doubled slash",
        308,
        lambda t: _get(t, path="/files//" + t.get.split("/")[2]),
        UPLOADD,
        location=lambda t: t.get.removesuffix("/content"),
    ),
    Case(
        "two Upload-Offsets on a PATCH",
        400,
        lambda t: _tus(
            t,
            "PATCH",
            t.upload,
            "Upload-Offset: 0",
            "Upload-Offset: 0",
            "Content-Type: application/offset+octet-stream",
            "Content-Length: 0",
        ),
        UPLOADD,
    ),
    Case(
        "an Upload-Offset of 5000 digits",
        400,
        lambda t: _tus(
            t,
            "PATCH",
            t.upload,
            f"Upload-Offset: {HUGE}",
            "Content-Type: application/offset+octet-stream",
            "Content-Length: 0",
        ),
        UPLOADD,
    ),
    Case("two Upload-Lengths", 400, _create("Upload-Length: 11"), UPLOADD),
    Case(
        "Upload-Metadata that is not base64",
        400,
        _create("Upload-Metadata: filename Zm9v="),
        UPLOADD,
    ),
    Case(
        "Upload-Metadata with an empty key",
        400,
        _create("Upload-Metadata: filename Zm9v,,type YQ=="),
        UPLOADD,
    ),
    Case(
        "Upload-Metadata naming a key twice",
        400,
        _create("Upload-Metadata: filename Zm9v,filename YQ=="),
        UPLOADD,
    ),
    Case(
        "a Content-Range of 5000 digits",
        400,
        lambda t: (
            "PUT /storage/tmp-upload/ HTTP/1.1\r\nHost: test\r\n"
            f"Content-Range: bytes 0-2/{HUGE}\r\nContent-Length: 3\r\n"
            f"{t.auth}\r\nabc"
        ).encode(),
        UPLOADD,
    ),
]


def cases_for(daemon: str) -> list[Case]:
    return [case for case in CASES if daemon in case.daemons]
