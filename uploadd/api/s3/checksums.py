"""S3's checksum algorithms, computed incrementally, named as S3 names them.

S3 lets a client vouch for an object's bytes with one of five algorithms,
sent in a header (``x-amz-checksum-crc32: <base64>``) or as a trailer of an
``aws-chunked`` body: ``CRC32`` (zlib's), ``CRC32C`` and ``CRC64NVME`` (the
AWS common runtime's, as the AWS SDKs compute them), ``SHA1`` and ``SHA256``
(hashlib's). A :class:`Checksum` is updated with the bytes as they pass and
its :meth:`~Checksum.digest` is the big-endian value whose base64 S3 sends.

A checksum has the face of a hashlib hasher (``name``, ``update``,
``digest``), so it can also run alongside a body's write
(``BlobFile(check=...)``) and be verified when the body ends:
:class:`BodyChecks` reads what a request vouched for in its headers (the
signed ``x-amz-content-sha256``, ``Content-MD5``, one ``x-amz-checksum-*``)
and verifies a finished body's digests against it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs
from twisted.web.http_headers import Headers

from uploadd.api.s3.errors import S3Error

#: The header an algorithm's value travels in starts with this.
HEADER_PREFIX = "x-amz-checksum-"

#: S3's checksum algorithms and the size of each one's digest in bytes.
SIZES: Mapping[str, int] = MappingProxyType(
    {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}
)
ALGORITHMS = tuple(SIZES)
#: Algorithms S3 has lately added that uploadd does not compute: a value
#: in one is refused rather than stored unverified.
UNSUPPORTED = frozenset({"MD5", "SHA512", "XXHASH3", "XXHASH64", "XXHASH128"})
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def header_of(algorithm: str) -> str:
    """The header (lower case) that carries ``algorithm``'s value."""
    return HEADER_PREFIX + algorithm.lower()


def algorithm_of(name: str) -> str | None:
    """The algorithm an algorithm name (``crc32c``) or a header name
    (``x-amz-checksum-crc32c``, any case) stands for; None for another."""
    name = name.strip().upper()
    if name.startswith(HEADER_PREFIX.upper()):
        name = name[len(HEADER_PREFIX) :]
    return name if name in SIZES else None


class Checksum:
    """One running checksum of bytes with one of S3's algorithms."""

    def __init__(self, algorithm: str) -> None:
        known = algorithm_of(algorithm)
        if known is None:
            raise ValueError(f"S3 has no checksum algorithm {algorithm!r}")
        self.name = known
        self.header = header_of(known)
        self.size = SIZES[known]
        self._crc: Callable[[bytes, int], int] | None = _CRCS.get(known)
        self._value = 0
        self._hash: Any = None if self._crc else hashlib.new(known.lower())

    def update(self, data: bytes) -> None:
        if self._crc is not None:
            self._value = self._crc(data, self._value)
        else:
            self._hash.update(data)

    def digest(self) -> bytes:
        """The checksum of the bytes so far, big-endian, as S3 encodes it."""
        if self._crc is not None:
            return self._value.to_bytes(self.size, "big")
        digest: bytes = self._hash.digest()
        return digest

    def b64digest(self) -> str:
        """The checksum as S3 sends it in a header or trailer."""
        return base64.b64encode(self.digest()).decode("ascii")

    def copy(self) -> Checksum:
        twin = Checksum(self.name)
        twin._value = self._value
        if self._hash is not None:
            twin._hash = self._hash.copy()
        return twin


def _crc32(data: bytes, previous: int) -> int:
    return zlib.crc32(data, previous) & 0xFFFFFFFF


# awscrt (some 8 MiB of native code) is loaded by the first body that asks
# for one of its checksums, not by every uploadd that starts.
def _crc32c(data: bytes, previous: int) -> int:
    from awscrt import checksums

    return int(checksums.crc32c(data, previous)) & 0xFFFFFFFF


def _crc64nvme(data: bytes, previous: int) -> int:
    from awscrt import checksums

    return int(checksums.crc64nvme(data, previous)) & 0xFFFFFFFFFFFFFFFF


_CRCS: Mapping[str, Callable[[bytes, int], int]] = MappingProxyType(
    {"CRC32": _crc32, "CRC32C": _crc32c, "CRC64NVME": _crc64nvme}
)


def decode_value(algorithm: str, value: str | bytes) -> bytes:
    """The digest a header or trailer value (base64) gives for ``algorithm``;
    S3's ``InvalidRequest`` if it is not base64 of a digest of that size."""
    known = algorithm_of(algorithm)
    if known is None:
        raise ValueError(f"S3 has no checksum algorithm {algorithm!r}")
    text = value.strip() if isinstance(value, str) else value.strip().decode("latin-1")
    try:
        digest = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != SIZES[known]:
        raise S3Error(
            "InvalidRequest", f"Value for {header_of(known)} header is invalid."
        )
    return digest


def mismatch(algorithm: str) -> S3Error:
    """What S3 answers when bytes do not match the ``algorithm`` checksum
    their client gave."""
    return S3Error(
        "BadDigest",
        f"The {algorithm} you specified did not match the calculated checksum.",
    )


def _unsupported(algorithm: str) -> S3Error:
    return S3Error(
        "InvalidRequest",
        f"Checksum algorithm {algorithm} provided is unsupported. Please try "
        f"again with any of the valid types: [{', '.join(ALGORITHMS)}]",
    )


def _one(headers: Headers, name: str) -> str | None:
    values = headers.getRawHeaders(name.encode("ascii"))
    return values[-1].decode("latin-1").strip() if values else None


@attrs.frozen
class BodyChecks:
    """What a request vouched for its body with, in its headers: the sha256
    its signature fixed (hex), the ``Content-MD5``, and one S3 checksum.

    For an ``aws-chunked`` body these vouch for the decoded bytes (its
    signature fixes no sha256; a trailer checksum is :mod:`.chunked`'s).
    """

    sha256: str | None = None
    md5: bytes | None = None
    algorithm: str | None = None
    expected: bytes | None = None

    @classmethod
    def of(cls, headers: Headers, payload: str) -> BodyChecks:
        """Read the checks from ``headers`` (``payload`` is the verified
        :attr:`~uploadd.api.s3.sigv4.Verified.payload`); a malformed one is
        the S3Error S3 refuses the request with, before its body is read."""
        md5 = None
        md5_text = _one(headers, "content-md5")
        if md5_text is not None:
            try:
                md5 = base64.b64decode(md5_text, validate=True)
            except (binascii.Error, ValueError):
                md5 = b""
            if len(md5) != 16:
                raise S3Error(
                    "InvalidDigest", "The Content-MD5 you specified was invalid."
                )
        given: list[tuple[str, str]] = []
        for raw, values in headers.getAllRawHeaders():
            name = raw.decode("latin-1").lower()
            if not name.startswith(HEADER_PREFIX):
                continue
            algorithm = name[len(HEADER_PREFIX) :].upper()
            if algorithm in UNSUPPORTED:
                raise _unsupported(algorithm)
            if algorithm in SIZES:
                given.append((algorithm, values[-1].decode("latin-1")))
        if len(given) > 1:
            raise S3Error(
                "InvalidRequest",
                "Expecting a single x-amz-checksum- header. "
                "Multiple checksum Types are not allowed.",
            )
        sdk = _one(headers, "x-amz-sdk-checksum-algorithm")
        if sdk is not None:
            if sdk.upper() not in SIZES:
                raise _unsupported(sdk)
            if given and given[0][0] != sdk.upper():
                raise S3Error(
                    "BadDigest",
                    f"The x-amz-checksum-{given[0][0].lower()} header does not "
                    "match the algorithm of x-amz-sdk-checksum-algorithm "
                    f"({sdk}).",
                )
            if not given and not headers.hasHeader(b"x-amz-trailer"):
                raise S3Error(
                    "InvalidRequest",
                    "x-amz-sdk-checksum-algorithm specified, but no corresponding "
                    "x-amz-checksum-* or x-amz-trailer headers were found.",
                )
        sha256 = payload.lower() if _HEX64.fullmatch(payload) else None
        if not given:
            return cls(sha256, md5)
        named, value = given[0]
        return cls(sha256, md5, named, decode_value(named, value))

    def hasher(self) -> Checksum | None:
        """The checksum to run alongside the body (``BlobFile(check=...)``),
        if a header gave one."""
        return Checksum(self.algorithm) if self.algorithm is not None else None

    def verify(
        self, sha256: str, md5: str, check: bytes | None = None
    ) -> Mapping[str, bytes]:
        """Check a finished body's digests (hex sha256 and md5, and the
        digest of :meth:`hasher`'s checksum) against what was vouched for;
        the verified checksum (algorithm -> digest) to keep and echo."""
        if self.sha256 is not None and sha256.lower() != self.sha256:
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what "
                "was computed.",
                ClientComputedContentSHA256=self.sha256,
                S3ComputedContentSHA256=sha256.lower(),
            )
        if self.md5 is not None and bytes.fromhex(md5) != self.md5:
            raise S3Error(
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            )
        if self.algorithm is None:
            return MappingProxyType({})
        if check != self.expected:
            raise mismatch(self.algorithm)
        assert self.expected is not None
        return MappingProxyType({self.algorithm: self.expected})
