"""What a client vouches for its bytes with, and the checks of it.

Two kinds, whatever protocol carried them (no HTTP here; ``api/digests.py``
makes them from headers):

- a :class:`BodyCheck` vouches for one request's body: its hasher runs
  alongside the write (``BlobFile(check=)``), and the digest must be the
  one given when the body ends (tus ``Upload-Checksum``, ``Content-Digest``);
- a :class:`ReprCheck` vouches for the whole file, checked when its last
  byte has arrived (``Repr-Digest``): a sha256 against the file's sha256,
  which uploadd computes anyway (running along a resumable upload), a
  sha512 by reading the file once on a thread.

A mismatch is :class:`~uploadd.errors.ChecksumMismatch`, naming the check as
the client called it, the algorithm and the digest the client gave, so the
HTTP edge can answer in the client's own protocol.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import Any

import attrs

from noded.threads import Runner
from uploadd.errors import ChecksumMismatch
from uploadd.ingest.blob import Digest

#: Hashes a whole file can be checked with (hashlib's names) and their sizes.
WHOLE_ALGORITHMS = {"sha256": 32, "sha512": 64}
#: Where an upload's record keeps a whole-file digest stated before its
#: last byte came; keys starting with ``_`` are the server's own.
KEPT = "_repr-digest"

READ_SIZE = 1024 * 1024


@attrs.frozen
class BodyCheck:
    """A checksum the client vouched for one body with: the hasher the body
    runs through, the digest it must end with, and what the client called it."""

    hasher: Any
    expected: bytes
    named: str = "checksum"

    def verify(self, digest: Digest) -> None:
        """ChecksumMismatch unless the body that left ``digest`` is the one
        vouched for."""
        if digest.check != self.expected:
            raise ChecksumMismatch(
                f"the body does not match its {self.named}; it was discarded",
                named=self.named,
                algorithm=self.hasher.name,
                provided=self.expected,
            )


def _whole(algorithm: str, expected: bytes) -> None:
    if WHOLE_ALGORITHMS.get(algorithm) != len(expected):
        raise ValueError(
            f"a whole-file check is one of {', '.join(WHOLE_ALGORITHMS)} with a "
            f"digest of its size, not {algorithm} of {len(expected)} bytes"
        )


@attrs.frozen
class ReprCheck:
    """A digest the client vouched for the whole file with (``algorithm``
    in hashlib's name), checked once every byte has arrived."""

    algorithm: str
    expected: bytes = attrs.field()
    named: str = "Repr-Digest"

    @expected.validator
    def _sized(self, _: Any, expected: bytes) -> None:
        _whole(self.algorithm, expected)

    async def verify(self, sha256_hex: str, path: Path, run: Runner) -> None:
        """ChecksumMismatch unless the file at ``path`` (whose sha256 is
        ``sha256_hex``) is the one vouched for; a sha512 reads the file
        through ``run``."""
        if self.algorithm == "sha256":
            actual = bytes.fromhex(sha256_hex)
        else:
            actual = await run(file_digest, path, self.algorithm)
        if actual != self.expected:
            raise ChecksumMismatch(
                f"the file does not match its {self.named}; "
                "the bytes of this request were discarded",
                named=self.named,
                algorithm=self.algorithm,
                provided=self.expected,
            )

    def kept(self) -> str:
        """This check as an upload's record keeps it (under :data:`KEPT`)."""
        return f"{self.algorithm} {base64.b64encode(self.expected).decode('ascii')}"

    @classmethod
    def kept_in(cls, metadata: dict[str, str]) -> ReprCheck | None:
        """The check an upload's record keeps, if any."""
        text = metadata.get(KEPT)
        if not text:
            return None
        algorithm, _, encoded = text.partition(" ")
        try:
            return cls(algorithm, base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            # Only the server writes this key; a record that does not hold
            # one it can read checks nothing rather than failing every append.
            return None


def file_digest(path: Path, algorithm: str) -> bytes:
    """The ``algorithm`` digest of the whole file at ``path`` (blocks: run
    it on a thread)."""
    hasher = hashlib.new(algorithm)
    with path.open("rb", buffering=0) as handle:
        while block := handle.read(READ_SIZE):
            hasher.update(block)
    return hasher.digest()
