"""The node protocol: AMP commands between uploadd and noded (and node to node).

A peer proves it holds the cluster secret before anything else is served:
``Hello`` returns a fresh nonce, ``Authenticate`` answers it with
HMAC-SHA256(secret, nonce). Every other command fails with UNAUTHORIZED
until then.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar

from twisted.protocols import amp


class Unauthorized(Exception):
    """The peer has not proved it holds the cluster secret."""


class UnknownFile(Exception):
    """This node holds no file by that id."""


def proof(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, b"amp:" + nonce.encode("ascii"), hashlib.sha256).hexdigest()


_GUARDED: dict[type[Exception], bytes] = {Unauthorized: b"UNAUTHORIZED"}


class Hello(amp.Command):
    arguments: ClassVar[list[tuple[bytes, amp.Argument]]] = []
    response = [(b"nonce", amp.Unicode()), (b"node_id", amp.Unicode())]


class Authenticate(amp.Command):
    arguments = [(b"proof", amp.Unicode())]
    response: ClassVar[list[tuple[bytes, amp.Argument]]] = []
    errors = _GUARDED


class Ping(amp.Command):
    """State, space and load: what the pinger and placement need."""

    arguments: ClassVar[list[tuple[bytes, amp.Argument]]] = []
    response = [
        (b"node_id", amp.Unicode()),
        (b"state", amp.Unicode()),
        (b"free", amp.Integer()),
        (b"total", amp.Integer()),
        (b"reserved", amp.Integer()),
        (b"load", amp.Float()),
        (b"version", amp.Unicode()),
        (b"zone", amp.Unicode()),
        (b"rsync_port", amp.Integer()),
        (b"http_url", amp.Unicode()),
    ]
    errors = _GUARDED


class Stat(amp.Command):
    """Size and sha256 of a held file: how a copy is verified."""

    arguments = [(b"file_id", amp.Unicode())]
    response = [(b"size", amp.Integer()), (b"sha256", amp.Unicode())]
    errors = {**_GUARDED, UnknownFile: b"UNKNOWN_FILE"}


class Delete(amp.Command):
    arguments = [(b"file_id", amp.Unicode())]
    response = [(b"deleted", amp.Boolean())]
    errors = _GUARDED


class Replicate(amp.Command):
    """This node copies one of its files to another node's rsync daemon."""

    arguments = [
        (b"file_id", amp.Unicode()),
        (b"host", amp.Unicode()),
        (b"port", amp.Integer()),
    ]
    response = [(b"exit_code", amp.Integer()), (b"meaning", amp.Unicode())]
    errors = {**_GUARDED, UnknownFile: b"UNKNOWN_FILE"}
