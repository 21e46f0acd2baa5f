"""RFC 9530 digests as both daemons answer them: whether a client asked for
the ``Repr-Digest`` of what it downloads or uploaded (``Want-Repr-Digest``),
and that field for a stored file from the sha256 uploadd records of it.

uploadd keeps the sha256 of every file (and signs it into a node's download
URL), so ``sha-256`` is what is answered: without reading the file again.
A client's ``Want-Repr-Digest`` is a hint (RFC 9530 section 4): answering
sha-256 when it prefers another algorithm is allowed, so it is answered
whatever the weights, unless the client gave sha-256 the weight 0 ("not
acceptable"); then nothing is sent, rather than reading a whole file for a
sha-512 before the first byte of a download. A Want field that does not
parse, or whose weights are not integers from 0 to 10, is ignored as if it
were absent (RFC 9651 section 4.2).

uploadd's request side (``uploadd/api/digests.py``) parses the fields a
client vouches for its bytes with, and uses these for its answers.
"""

from __future__ import annotations

import base64

from twisted.web.http_headers import Headers

from noded.structured import Item, Malformed, parse_dictionary

#: The algorithm key of the digest answered (RFC 9530 section 5).
ANSWERED = "sha-256"


def wanted(headers: Headers, name: bytes) -> dict[str, int] | None:
    """The weights a ``Want-Repr-Digest`` or ``Want-Content-Digest`` field
    (``name``) gives each algorithm key; None when the field is absent or
    is no valid preference (then it is ignored)."""
    lines = headers.getRawHeaders(name)
    if not lines:
        return None
    try:
        members = parse_dictionary(lines)
    except Malformed:
        return None
    weights: dict[str, int] = {}
    for key, member in members.items():
        value = member.value if isinstance(member, Item) else None
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        if not 0 <= value <= 10:
            return None
        weights[key] = value
    return weights


def wants_repr_digest(headers: Headers) -> bool:
    """Whether to answer a ``Repr-Digest`` (of sha-256): the request has a
    valid ``Want-Repr-Digest`` that does not call sha-256 unacceptable."""
    weights = wanted(headers, b"want-repr-digest")
    return weights is not None and weights.get(ANSWERED) != 0


def byte_sequence(raw: bytes) -> str:
    """``raw`` as a Structured Field Byte Sequence: ``:base64:``."""
    return ":" + base64.b64encode(raw).decode("ascii") + ":"


def repr_digest_field(sha256_hex: str) -> bytes:
    """The ``Repr-Digest`` value of a file whose sha256 is ``sha256_hex``."""
    return f"{ANSWERED}={byte_sequence(bytes.fromhex(sha256_hex))}".encode("ascii")
