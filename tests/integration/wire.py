"""Raw HTTP/1.1 over a socket: what a client sees, byte for byte, and when."""

from __future__ import annotations

import json
import re
import select
import socket
import time
from typing import Any

import attrs


@attrs.frozen
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def problem(self) -> bool:
        """A problem+json answer whose status field agrees with the status line."""
        return (
            self.header("content-type") == "application/problem+json"
            and self.json().get("status") == self.status
        )


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_answer(sock: socket.socket, started: float) -> Answer:
    """One response with a Content-Length (or none), read from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before an answer: {data!r}")
        data += chunk
    seconds = time.monotonic() - started
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Answer(int(lines[0].split()[1]), headers, body[:length], seconds)


def ask(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
    length: int | None = None,
) -> Answer:
    """Send a head declaring ``length`` body bytes (default: all of ``body``)
    and then only ``body``; the answer, however much of the body was sent."""
    declared = len(body) if length is None else length
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        started = time.monotonic()
        sock.sendall(
            request_head(method, path, {"Content-Length": str(declared), **headers})
            + body
        )
        return read_answer(sock, started)


def hold(
    port: int, method: str, path: str, headers: dict[str, str], length: int
) -> socket.socket:
    """A request whose head and first bytes are sent and whose body never
    ends: the open socket, for the caller to read from and close."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
    sock.sendall(
        request_head(method, path, {"Content-Length": str(length), **headers})
        + b"x" * 65536
    )
    return sock


def push(
    port: int, method: str, path: str, headers: dict[str, str], size: int
) -> Answer:
    """Declare ``size`` body bytes and send them 1 MiB at a time until the
    server answers (a refusal mid-body) or all are sent; the answer."""
    block = b"\xa5" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=30.0) as sock:
        started = time.monotonic()
        sock.sendall(
            request_head(method, path, {"Content-Length": str(size), **headers})
        )
        sent = 0
        while sent < size:
            answered, _, _ = select.select([sock], [], [], 0)
            if answered:
                break
            piece = block[: min(len(block), size - sent)]
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        return read_answer(sock, started)


_STATUS_LINE = re.compile(rb"^HTTP/1\.1 ([1-5][0-9]{2}) [\x20-\x7e]*$")
_FIELD_LINE = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[ \t]*[\x20-\x7e\t]*$")


@attrs.frozen
class Exchange:
    """Every response to one request as the bytes came: the informational
    (1xx) ones in order, then the final one."""

    interim: tuple[Answer, ...]
    final: Answer


class Stream:
    """Reads responses from a socket, failing on any byte that is not
    HTTP/1.1: each status line and field line must parse."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed mid-response: {self.buffer[:200]!r}")
        self.buffer += chunk

    def head(self, started: float, body: bool = True) -> Answer:
        """The next response head (a 1xx has no body; a final one's body is
        read by its Content-Length unless ``body`` is False: the answer to
        HEAD)."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = _STATUS_LINE.match(lines[0])
        assert status is not None, f"not a status line: {lines[0]!r}"
        headers: dict[str, str] = {}
        for line in lines[1:]:
            assert _FIELD_LINE.match(line), f"not a field line: {line!r}"
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.lower()] = value.strip(" \t")
        code = int(status.group(1))
        content = b""
        if code >= 200 and body:
            length = int(headers.get("content-length", "0"))
            while len(self.buffer) < length:
                self._fill()
            content, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(code, headers, content, time.monotonic() - started)

    def exchange(self, started: float) -> Exchange:
        """Responses up to and including the final one."""
        interim: list[Answer] = []
        while True:
            answer = self.head(started)
            if answer.status >= 200:
                return Exchange(tuple(interim), answer)
            interim.append(answer)


def converse(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> Exchange:
    """One request on a new connection; every response to it (1xx first)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30.0) as sock:
        started = time.monotonic()
        sock.sendall(
            request_head(method, path, {"Content-Length": str(len(body)), **headers})
            + body
        )
        stream = Stream(sock)
        if method == "HEAD":
            return Exchange((), stream.head(started, body=False))
        return stream.exchange(started)
