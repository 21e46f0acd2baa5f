"""Integrity fields at the HTTP edge: the headers a client vouches for its
bytes with, turned into the core's checks (``uploadd/uploads/checks.py``),
and the ``Repr-Digest`` it may ask for in answers.

- ``Content-Digest`` (RFC 9530 section 2) vouches for one request's content:
  a :class:`BodyCheck`, its hasher running alongside the write;
- ``Repr-Digest`` (section 3) vouches for the whole representation: a
  :class:`ReprCheck`, verified by the request that completes the upload
  (for a plain ``PUT``, that one request);
- tus ``Upload-Checksum: <algorithm> <base64>`` vouches for one body, in
  tus's own words (sha1, md5, sha256; another algorithm is a 400, a
  mismatch tus's 460).

The RFC 9530 fields are Structured Field Dictionaries of Byte Sequences.
uploadd verifies ``sha-256`` and ``sha-512``, and ignores the others
(md5, sha, crc32c, unixsum, ...) as the RFC lets a recipient (sections 2
and 3: "A recipient MAY ignore any or all digests"). Given both, only
sha-512, the stronger, is verified: checking the stronger one leaves no
downgrade (section 6.6), and one check per field bounds the work (section
6.7). A ``Repr-Digest`` in sha-256 costs nothing (the file's sha256 is
computed anyway); in sha-512 it costs one read of the file at the end.
Parameters on a member are ignored. A field that is no valid Dictionary,
or gives a supported algorithm something other than a Byte Sequence,
makes the request a 400 naming the field (RFC 9651 section 4.2: the
message is malformed); a byte sequence of the wrong length for its
algorithm is the ``digest-invalid-values`` problem type, and a digest that
does not match ``digest-mismatched-values``, both 400 as
draft-ietf-httpapi-digest-fields-problem-types registers them.

For a plain ``PUT`` the two fields vouch for the same bytes: uploadd keeps
the body as sent, content coding and all, so the content is the whole
representation. For a resumable upload ``Content-Digest`` is of one
request's bytes and ``Repr-Digest`` of the file they add up to. What is
answered is ``Repr-Digest: sha-256=:...:`` of a stored file, when the
client asks with ``Want-Repr-Digest`` (see :mod:`noded.digests` for the
policy, which both daemons share).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from twisted.web.http_headers import Headers

from noded.digests import byte_sequence, repr_digest_field, wants_repr_digest
from noded.problems import Problem, bad_request
from noded.structured import Item, Malformed, parse_dictionary
from uploadd.errors import ChecksumMismatch
from uploadd.uploads.checks import BodyCheck, ReprCheck

__all__ = [
    "CHECKSUMS",
    "CONTENT_DIGEST",
    "REPR_DIGEST",
    "body_check",
    "content_check",
    "mismatch_problem",
    "parse_checksum",
    "repr_check",
    "repr_digest_field",
    "vouched",
    "wants_repr_digest",
]

CONTENT_DIGEST, REPR_DIGEST = "Content-Digest", "Repr-Digest"
#: The RFC 9530 integrity fields whose mismatches use the problem types.
INTEGRITY_FIELDS = frozenset({CONTENT_DIGEST, REPR_DIGEST})
#: RFC 9530 algorithm keys verified, strongest first: hashlib's name, size.
ALGORITHMS = {"sha-512": ("sha512", 64), "sha-256": ("sha256", 32)}
#: tus checksum algorithms (the checksum extension), in hashlib's names.
CHECKSUMS = ("sha1", "md5", "sha256")

_PROBLEM_TYPES = "https://iana.org/assignments/http-problem-types#"
INVALID_VALUES = _PROBLEM_TYPES + "digest-invalid-values"
MISMATCHED_VALUES = _PROBLEM_TYPES + "digest-mismatched-values"


# -- RFC 9530 ----------------------------------------------------------------


def vouched(headers: Headers, name: str) -> tuple[str, bytes] | None:
    """The digest to verify from the integrity field ``name``: the RFC
    algorithm key and the bytes, for the strongest supported algorithm it
    gives; None if it is absent or names none uploadd supports."""
    lines = headers.getRawHeaders(name.lower().encode("ascii"))
    if not lines:
        return None
    try:
        members = parse_dictionary(lines)
    except Malformed as error:
        raise bad_request(
            f"{name} is not a Structured Field Dictionary of digests: {error}",
            header=name,
        ) from None
    found: dict[str, bytes] = {}
    invalid: list[dict[str, str]] = []
    for key, (_, size) in ALGORITHMS.items():
        member = members.get(key)
        if member is None:
            continue
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise bad_request(
                f"{name}: the {key} digest is not a byte sequence", header=name
            )
        if len(member.value) != size:
            invalid.append(
                {
                    "algorithm": key,
                    "header": name,
                    "reason": f"digest value is not {size} bytes long",
                }
            )
        found[key] = member.value
    if invalid:
        raise Problem(
            400,
            f"{name}: " + "; ".join(f"{i['algorithm']} {i['reason']}" for i in invalid),
            "Invalid Digest Values",
            extra={"invalid_digests": invalid},
            type=INVALID_VALUES,
        )
    strongest = next((key for key in ALGORITHMS if key in found), None)
    return None if strongest is None else (strongest, found[strongest])


def content_check(headers: Headers) -> BodyCheck | None:
    """The check of this request's content that its ``Content-Digest``
    vouches for (a fresh hasher for the body to run through), if any."""
    given = vouched(headers, CONTENT_DIGEST)
    if given is None:
        return None
    key, expected = given
    return BodyCheck(hashlib.new(ALGORITHMS[key][0]), expected, named=CONTENT_DIGEST)


def repr_check(headers: Headers) -> ReprCheck | None:
    """The check of the whole file that this request's ``Repr-Digest``
    vouches for, if any."""
    given = vouched(headers, REPR_DIGEST)
    if given is None:
        return None
    key, expected = given
    return ReprCheck(ALGORITHMS[key][0], expected, named=REPR_DIGEST)


def mismatch_problem(error: ChecksumMismatch) -> Problem | None:
    """The ``digest-mismatched-values`` problem for a mismatch of an RFC 9530
    field (None for another kind of check). The member names the digest
    the client gave, never the one computed (an oracle, the draft says)."""
    if error.named not in INTEGRITY_FIELDS:
        return None
    key = next(
        (k for k, (name, _) in ALGORITHMS.items() if name == error.algorithm),
        error.algorithm,
    )
    mismatched = {
        "algorithm": key,
        "provided_digest": byte_sequence(error.provided),
        "header": error.named,
    }
    return Problem(
        400,
        error.detail,
        "Mismatched Digest Values",
        extra={"mismatched_digests": [mismatched]},
        type=MISMATCHED_VALUES,
    )


# -- tus ---------------------------------------------------------------------


def parse_checksum(text: str | None) -> BodyCheck | None:
    """tus ``Upload-Checksum: algorithm base64`` -> the check of one body."""
    if text is None:
        return None
    algorithm, _, encoded = text.partition(" ")
    if algorithm not in CHECKSUMS:
        raise bad_request(
            f"unsupported checksum algorithm {algorithm!r}; use one of "
            + ", ".join(CHECKSUMS)
        )
    try:
        expected = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise bad_request("Upload-Checksum is not 'algorithm base64digest'") from None
    hasher: Any = hashlib.new(algorithm, usedforsecurity=False)
    return BodyCheck(hasher, expected, named="Upload-Checksum")


def body_check(headers: Headers, checksum: str | None) -> BodyCheck | None:
    """The one check of a tus body: its ``Upload-Checksum`` or its
    ``Content-Digest``; both at once is a 400 (one body runs through one
    hasher)."""
    tus, rfc = parse_checksum(checksum), content_check(headers)
    if tus is not None and rfc is not None:
        raise bad_request("send Upload-Checksum or Content-Digest, not both")
    return tus or rfc
