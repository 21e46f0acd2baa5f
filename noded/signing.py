"""Signed, expiring download URLs: uploadd signs them, noded checks them.

The key is derived from the cluster secret, so nodes need no extra setting.
A URL carries the file id in its path and ``expires``, ``name``, ``type``,
optionally ``sha256``, and ``sig`` in its query; the signature covers them
all.
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


def _mac(
    key: bytes, file_id: str, expires: int, name: str, ctype: str, sha256: str = ""
) -> str:
    fields = (file_id, str(expires), name, ctype, *((sha256,) if sha256 else ()))
    message = "\n".join(fields).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_query(
    key: bytes, file_id: str, expires: int, name: str, ctype: str, sha256: str = ""
) -> str:
    """The query string that lets the holder fetch ``file_id`` until
    ``expires``; with the file's ``sha256``, which the node then gives as
    the download's ETag."""
    sig = _mac(key, file_id, expires, name, ctype, sha256)
    query: dict[str, str | int] = {"expires": expires, "name": name, "type": ctype}
    if sha256:
        query["sha256"] = sha256
    query["sig"] = sig
    return urlencode(query)


@attrs.frozen
class Grant:
    file_id: str
    name: str
    content_type: str
    expires: int
    sha256: str = ""


def verify(key: bytes, file_id: str, query: dict[str, str], now: float) -> Grant:
    """The grant a signed URL carries, or BadSignature."""
    try:
        expires = int(query["expires"])
        name, ctype, sig = query["name"], query["type"], query["sig"]
    except (KeyError, ValueError):
        raise BadSignature("the download URL is not signed") from None
    sha256 = query.get("sha256", "")
    expected = _mac(key, file_id, expires, name, ctype, sha256)
    if not hmac.compare_digest(expected, sig):
        raise BadSignature("the download URL's signature does not match")
    if expires <= now:
        raise BadSignature("the download URL has expired")
    return Grant(file_id, name, ctype, expires, sha256)
