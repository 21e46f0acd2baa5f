"""The pieces of Signature Version 4 that S3 signs, and how it signs them.

Pure functions shared by request verification (:mod:`.sigv4`), the chunk
signatures of an ``aws-chunked`` body (:mod:`.chunked`) and the POST
policy (:mod:`.policy`): the canonical forms of a request's path, query and
headers, the strings to sign, the key derived from a secret, and the
``Credential`` scope.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Iterable
from urllib.parse import quote, unquote_to_bytes

import attrs
from twisted.web.http_headers import Headers

from uploadd.api.s3.errors import S3Error

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
AMZ_DATE = "%Y%m%dT%H%M%SZ"
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")


@attrs.frozen
class Credential:
    """The ``Credential`` of a signature: the key id and the scope."""

    access_key_id: str
    date: str
    region: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{SERVICE}/{TERMINATOR}"


def signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """The key a secret signs with on ``date`` (YYYYMMDD) in ``region``."""
    key = ("AWS4" + secret).encode("utf-8")
    for part in (date, region, service, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def sign(key: bytes, string_to_sign: str) -> str:
    """The hex signature of ``string_to_sign`` with a signing key."""
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def string_to_sign(amz_date: str, scope: str, canonical: bytes) -> str:
    return "\n".join(
        (ALGORITHM, amz_date, scope, hashlib.sha256(canonical).hexdigest())
    )


def chunk_string_to_sign(
    amz_date: str, scope: str, previous: str, chunk_sha256: str
) -> str:
    return "\n".join(
        (
            ALGORITHM + "-PAYLOAD",
            amz_date,
            scope,
            previous,
            EMPTY_SHA256,
            chunk_sha256,
        )
    )


def trailer_string_to_sign(
    amz_date: str, scope: str, previous: str, trailer_sha256: str
) -> str:
    return "\n".join(
        (ALGORITHM + "-TRAILER", amz_date, scope, previous, trailer_sha256)
    )


def uri_encode(data: bytes) -> str:
    """AWS's UriEncode: every byte but ``A-Za-z0-9-_.~`` as ``%XX``."""
    return quote(data, safe="-_.~")


def canonical_uri(path: bytes) -> str:
    """The canonical URI of a raw request path: each segment decoded, then
    encoded once as AWS encodes it (``/`` between segments kept, ``%2F``
    inside one kept; no ``.``/``..`` or ``//`` normalisation, as S3)."""
    if not path.startswith(b"/"):
        path = b"/" + path
    return "/".join(uri_encode(unquote_to_bytes(part)) for part in path.split(b"/"))


def decode_query(raw: bytes) -> list[tuple[bytes, bytes]]:
    """Name-value pairs of a raw query, percent-decoded (``+`` as a space,
    as forms and S3 read it); a name without ``=`` has an empty value."""
    pairs = []
    for piece in raw.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        pairs.append(
            (
                unquote_to_bytes(name.replace(b"+", b" ")),
                unquote_to_bytes(value.replace(b"+", b" ")),
            )
        )
    return pairs


def canonical_query(
    pairs: Iterable[tuple[bytes, bytes]], exclude: frozenset[bytes] = frozenset()
) -> str:
    """The canonical query string: names and values encoded, sorted by
    encoded name then value, ``exclude``d names left out."""
    encoded = sorted(
        (uri_encode(name), uri_encode(value))
        for name, value in pairs
        if name not in exclude
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_headers(headers: Headers, names: Iterable[str]) -> bytes:
    """``name:value\\n`` for each signed header, in the order given: a
    header's lines joined by ``,``, each value's outer whitespace trimmed
    and inner runs collapsed to one space (bytes as received)."""
    lines = []
    for name in names:
        values = headers.getRawHeaders(name.encode("ascii"), [])
        value = b",".join(b" ".join(v.split()) for v in values)
        lines.append(name.encode("ascii") + b":" + value + b"\n")
    return b"".join(lines)


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Headers,
    signed: Iterable[str],
    payload: str,
) -> bytes:
    signed = tuple(signed)
    return b"\n".join(
        (
            method.encode("ascii"),
            uri.encode("ascii"),
            query.encode("ascii"),
            canonical_headers(headers, signed),
            ";".join(signed).encode("ascii"),
            payload.encode("ascii"),
        )
    )


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """The raw path and raw query of a request target (an absolute-form
    target loses its scheme and authority)."""
    if target.startswith((b"http://", b"https://")):
        rest = target.split(b"://", 1)[1]
        slash = rest.find(b"/")
        target = rest[slash:] if slash >= 0 else b"/"
    path, _, query = target.partition(b"?")
    path = path.partition(b"#")[0]
    return path, query


def credential_of(text: str, region: str, code: str, prefix: str) -> Credential:
    parts = text.split("/")
    if len(parts) != 5 or not parts[0] or not re.fullmatch(r"\d{8}", parts[1]):
        raise S3Error(
            code,
            f"{prefix}the Credential is mal-formed; expecting "
            '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
        )
    access_key_id, date, their_region, service, terminator = parts
    if their_region != region:
        raise S3Error(
            code,
            f"{prefix}the region '{their_region}' is wrong; expecting '{region}'",
            Region=region,
        )
    if service != SERVICE:
        raise S3Error(
            code,
            f"{prefix}incorrect service '{service}'. "
            f"This endpoint belongs to '{SERVICE}'.",
        )
    if terminator != TERMINATOR:
        raise S3Error(
            code,
            f"{prefix}incorrect terminal '{terminator}'. "
            f"This endpoint uses '{TERMINATOR}'.",
        )
    return Credential(access_key_id, date, region)


def parse_amz_date(text: str) -> float | None:
    if not _AMZ_DATE.fullmatch(text):
        return None
    try:
        return float(calendar.timegm(time.strptime(text, AMZ_DATE)))
    except ValueError:
        return None
