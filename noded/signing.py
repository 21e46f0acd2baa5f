"""Signed, expiring download URLs: uploadd signs them, noded checks them.

The key is derived from the cluster secret, so nodes need no extra setting.
A URL carries the file id in its path and ``expires``, ``name``, ``type`` and
``sig`` in its query; the signature covers all four.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

import attrs


class BadSignature(Exception):
    """The URL is unsigned, tampered with or expired; str() says which."""


def url_key(cluster_secret: bytes) -> bytes:
    return hmac.new(cluster_secret, b"uploadd download url v1", hashlib.sha256).digest()


def _mac(key: bytes, file_id: str, expires: int, name: str, ctype: str) -> str:
    message = "\n".join((file_id, str(expires), name, ctype)).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_query(key: bytes, file_id: str, expires: int, name: str, ctype: str) -> str:
    """The query string that lets the holder fetch ``file_id`` until ``expires``."""
    sig = _mac(key, file_id, expires, name, ctype)
    return urlencode({"expires": expires, "name": name, "type": ctype, "sig": sig})


@attrs.frozen
class Grant:
    file_id: str
    name: str
    content_type: str
    expires: int


def verify(key: bytes, file_id: str, query: dict[str, str], now: float) -> Grant:
    """The grant a signed URL carries, or BadSignature."""
    try:
        expires = int(query["expires"])
        name, ctype, sig = query["name"], query["type"], query["sig"]
    except (KeyError, ValueError):
        raise BadSignature("the download URL is not signed") from None
    expected = _mac(key, file_id, expires, name, ctype)
    if not hmac.compare_digest(expected, sig):
        raise BadSignature("the download URL's signature does not match")
    if expires <= now:
        raise BadSignature("the download URL has expired")
    return Grant(file_id, name, ctype, expires)
