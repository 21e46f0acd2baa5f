"""Blocking HTTP for the client: one connection per request, bodies streamed
from a file with a callback per block, redirects followed for downloads, and
errors that carry the server's problem+json ``detail``."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import attrs

#: Bytes read from a file or a socket at a time.
BLOCK = 256 * 1024
#: Seconds a connection may wait for the other side.
TIMEOUT = 60.0
REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Errors after which the same request may be tried again.
NETWORK_ERRORS = (OSError, http.client.HTTPException)


class Cancelled(Exception):
    """The user interrupted the command."""


class HTTPFailure(Exception):
    """An answer with an error status; the message names the request and
    what the server said."""

    def __init__(self, method: str, url: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {url}: {status} {detail}".rstrip())
        self.status = status
        self.detail = detail


@attrs.frozen
class Reply:
    """A whole answer, its body read."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)

    def json(self) -> Any:
        return json.loads(self.body)


def check_url(text: str) -> str:
    """An http(s) base URL without a trailing slash; ValueError otherwise."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {text!r}")
    return text.strip().rstrip("/")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port


def _connect(url: str) -> tuple[http.client.HTTPConnection, str]:
    """A connection to ``url``'s host and the request target to send."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http:// or https:// URL: {url!r}")
    kind = (
        http.client.HTTPSConnection
        if parts.scheme == "https"
        else http.client.HTTPConnection
    )
    connection = kind(parts.hostname, parts.port, timeout=TIMEOUT)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return connection, target


def detail_of(body: bytes) -> str:
    """The ``detail`` of a problem+json body, else the start of the body."""
    try:
        found = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    detail = found.get("detail") if isinstance(found, dict) else None
    if isinstance(detail, str):
        return detail
    return body[:200].decode("utf-8", "replace").strip()


def request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None = None,
) -> Reply:
    """One request with a body in memory (or none); the whole answer."""
    connection, target = _connect(url)
    try:
        connection.request(method, target, body=body, headers=dict(headers))
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def expect(reply: Reply, method: str, url: str, *ok: int) -> Reply:
    """``reply`` if its status is one of ``ok``, else HTTPFailure."""
    if reply.status not in ok:
        raise HTTPFailure(method, url, reply.status, detail_of(reply.body))
    return reply


def send_file(
    method: str,
    url: str,
    headers: Mapping[str, str],
    source: BinaryIO,
    length: int,
    sent: Callable[[int], None],
    cancel: threading.Event,
) -> Reply:
    """A request whose body is the next ``length`` bytes of ``source``, read
    and sent a block at a time; ``sent(total)`` after each block. A server
    that answers before taking the whole body (an error) is still heard."""
    connection, target = _connect(url)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(length)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        done = 0
        try:
            while done < length:
                if cancel.is_set():
                    raise Cancelled()
                block = source.read(min(BLOCK, length - done))
                if not block:
                    raise OSError(f"the file ended {length - done} bytes early")
                connection.send(block)
                done += len(block)
                sent(done)
        except (BrokenPipeError, ConnectionResetError):
            # The server may have refused the body and closed: its answer
            # says why, if it sent one; otherwise the send error stands.
            pass
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


@contextmanager
def get_stream(
    url: str, headers: Mapping[str, str], redirects: int = 5
) -> Iterator[http.client.HTTPResponse]:
    """A GET whose answer (2xx) is read by the caller; redirects are followed,
    and ``Authorization`` is not sent to another origin (a storage node's
    signed URL needs none). An error status raises HTTPFailure."""
    sent = dict(headers)
    for _ in range(redirects + 1):
        connection, target = _connect(url)
        try:
            connection.request("GET", target, headers=sent)
            response = connection.getresponse()
            location = response.getheader("Location")
            if response.status in REDIRECTS and location:
                response.read()
                following = urljoin(url, location)
                if _origin(following) != _origin(url):
                    sent.pop("Authorization", None)
                url = following
                continue
            if response.status >= 300:
                raise HTTPFailure(
                    "GET", url, response.status, detail_of(response.read())
                )
            yield response
            return
        finally:
            connection.close()
    raise HTTPFailure("GET", url, 310, f"more than {redirects} redirects")
