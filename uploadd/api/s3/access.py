"""Who an S3 request is: its Signature Version 4 checked against the access
key it names, and the principal that key acts as (its user, limited to the
key's scope). A request that says nothing of who signed it is anonymous,
and S3 refuses it (``AccessDenied``): every request here is signed, in its
``Authorization`` header, in a presigned query, or (POST Object) in its
form's policy. Small bodies read whole are checked here against what the
request vouched for them with."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web.http_headers import Headers

from uploadd.api.s3.checksums import BodyChecks, Checksum
from uploadd.api.s3.chunked import AwsChunked
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.policy import PostPolicy, verify_post_policy
from uploadd.api.s3.signing import decode_query, split_target
from uploadd.api.s3.sigv4 import Verified, verify_request
from uploadd.auth.access_keys import AccessKey, AccessKeys
from uploadd.auth.tokens import Principal


@attrs.define
class _Lookup:
    """The secret lookup one verification makes, keeping the key it found."""

    _keys: AccessKeys
    found: AccessKey | None = None

    async def secret_of(self, key_id: str) -> str | None:
        self.found = await self._keys.secret_of(key_id)
        return self.found.secret if self.found is not None else None


@attrs.frozen
class Signatures:
    """Checks signatures against the access keys, for one region."""

    _keys: AccessKeys
    _clock: IReactorTime
    region: str
    #: The longest a presigned URL may live, in seconds.
    max_expiry: float = 7 * 24 * 3600

    async def verify(
        self, method: bytes, target: bytes, headers: Headers
    ) -> tuple[Principal, Verified]:
        """Who signed the request and what its body must be; else the
        S3Error S3 answers with."""
        lookup = _Lookup(self._keys)
        verified = await verify_request(
            method,
            target,
            headers,
            self._clock.seconds(),
            lookup.secret_of,
            self.region,
        )
        if verified.presigned:
            self._check_expiry(target)
        assert lookup.found is not None  # a verified signature had its secret
        return lookup.found.principal, verified

    def _check_expiry(self, target: bytes) -> None:
        _, query = split_target(target)
        for name, value in decode_query(query):
            if name == b"X-Amz-Expires" and int(value) > self.max_expiry:
                raise S3Error(
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires must be less than "
                    f"{int(self.max_expiry)} seconds on this server",
                )

    async def policy(
        self, fields: Mapping[str, str], bucket: str, filename: str | None
    ) -> tuple[Principal, PostPolicy]:
        """Who signed a POST Object form's policy, and what it allows."""
        lookup = _Lookup(self._keys)
        allowed = await verify_post_policy(
            fields,
            bucket,
            self._clock.seconds(),
            lookup.secret_of,
            self.region,
            filename,
        )
        assert lookup.found is not None
        return lookup.found.principal, allowed


def read_body(content: bytes, headers: Headers, verified: Verified) -> bytes:
    """A small body read whole (an XML document), decoded if it came
    ``aws-chunked``, checked against the sha256 its signature fixed and the
    ``Content-MD5`` or checksum its headers gave."""
    checks = BodyChecks.of(headers, verified.payload)
    if verified.streaming:
        pieces: list[bytes] = []
        decoder = AwsChunked(verified, pieces.append)
        decoder.write(content)
        decoder.finish()
        content = b"".join(pieces)
    check = checks.hasher()
    if check is not None:
        check.update(content)
    sha256 = hashlib.sha256(content).hexdigest()
    md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
    checks.verify(sha256, md5, check.digest() if isinstance(check, Checksum) else None)
    return content
