"""Where the S3 API's request bodies go: planned when their headers arrive
(the ingest gate asks :meth:`S3API.plan_body <uploadd.api.s3.app.S3API>`),
once the signature holds.

An object's body (PutObject) streams into a staging file of the library, a
part's (UploadPart) into its partial upload; an ``aws-chunked`` body is
decoded in front of either (:class:`~uploadd.api.s3.body.ChunkedSink`). A
request document (a completion's list of parts, a Delete) streams into a
small staging file too, read whole once it is checked, then removed; so does
the empty body of a CopyObject. What a request vouched for its body with
(``Content-MD5``, a checksum header, the signed sha256) is checked when the
body has arrived; a body that fails is removed.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import attrs
from twisted.web.http_headers import Headers

from noded.threads import Runner
from uploadd.api.gate import BodyPlan, DecodedBody
from uploadd.api.s3.body import ChunkedSink
from uploadd.api.s3.checksums import BodyChecks, header_of
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.faults import s3_problem
from uploadd.api.s3.sigv4 import Verified
from uploadd.api.s3.xml import MAX_DOCUMENT
from uploadd.auth.tokens import Principal
from uploadd.buckets import ObjectMeta
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.store.blobs import BlobStore

#: The headers an object keeps and is answered with (S3's).
KEPT_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)
#: The most user metadata an object takes, names and values (S3's 2 KB).
MAX_USER_METADATA = 2048
USER_PREFIX = "x-amz-meta-"


def _one(headers: Headers, name: bytes) -> str | None:
    values = headers.getRawHeaders(name)
    return values[-1].decode("latin-1").strip() if values else None


def meta_of(given: Mapping[str, str]) -> ObjectMeta:
    """What a request (its headers, or a form's fields, by lower-case name)
    says of an object: its content type, ``x-amz-meta-*`` (at most 2 KB)
    and the headers it is to be answered with."""
    user = {
        name[len(USER_PREFIX) :]: value
        for name, value in given.items()
        if name.startswith(USER_PREFIX) and len(name) > len(USER_PREFIX)
    }
    if sum(len(name) + len(value) for name, value in user.items()) > MAX_USER_METADATA:
        raise S3Error(
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size",
            MaxSizeAllowed=str(MAX_USER_METADATA),
        )
    headers = {name: given[name] for name in KEPT_HEADERS if given.get(name)}
    encoding = headers.get("content-encoding")
    if encoding is not None:
        # aws-chunked is how the body came, not what the object is.
        codings = [
            c.strip() for c in encoding.split(",") if c.strip().lower() != "aws-chunked"
        ]
        if codings:
            headers["content-encoding"] = ", ".join(codings)
        else:
            del headers["content-encoding"]
    return ObjectMeta(given.get("content-type") or None, user, headers)


def header_fields(headers: Headers) -> dict[str, str]:
    """A request's headers by lower-case name (the last of a repeated one)."""
    return {
        name.decode("latin-1").lower(): values[-1].decode("latin-1").strip()
        for name, values in headers.getAllRawHeaders()
    }


@attrs.frozen
class Signed:
    """A body's signed request: who, its signature, what it vouched for."""

    principal: Principal
    verified: Verified
    checks: BodyChecks


@attrs.frozen
class Staging:
    """Staging files for bodies, in the library's staging area."""

    _blobs: BlobStore
    _run: Runner
    _fsync: bool

    def plan(
        self,
        signed: Signed,
        context: Any,
        max_size: int | None = None,
        blob_id: str | None = None,
    ) -> BodyPlan:
        """A body into a new staging file (``blob_id``), checked with the
        request's checksum as it streams, decoded first if aws-chunked."""
        target = BlobFile(
            self._blobs.staging_path(blob_id or uuid.uuid4().hex),
            self._fsync,
            check=signed.checks.hasher(),
            md5=True,
        )
        return BodyPlan(
            target,
            max_size=max_size,
            context=context,
            principal=signed.principal,
            wrap=decoder(signed.verified),
        )

    def document(self, signed: Signed, context: Any) -> BodyPlan:
        """A request document's body: at most :data:`MAX_DOCUMENT` bytes."""
        return self.plan(signed, context, max_size=MAX_DOCUMENT)

    async def read(self, plan: BodyPlan, digest: Digest) -> bytes:
        """The document a staged body holds, checked; the file removed."""
        signed: Signed = plan.context.signed
        try:
            signed.checks.verify(digest.sha256, digest.md5, digest.check)
            content: bytes = await self._run(plan.target.path.read_bytes)
            return content
        finally:
            await self.drop(plan)

    async def drop(self, plan: BodyPlan) -> None:
        await self._run(plan.target.path.unlink, True)


def decoder(verified: Verified) -> Any:
    """The plan's ``wrap`` for an aws-chunked body, else None."""
    if not verified.streaming:
        return None

    def wrap(sink: Any, reject: Any) -> DecodedBody:
        return ChunkedSink(
            sink, verified, on_reject=lambda error: reject(s3_problem(error))
        )

    return wrap


def checksum_value(digest: bytes) -> str:
    """A checksum as S3 writes it in a header: base64."""
    return base64.b64encode(digest).decode("ascii")


def verified_checksums(signed: Signed, body: Any, digest: Digest) -> dict[str, str]:
    """Check a finished body against what its request vouched for; the
    checksums it carried and matched (algorithm -> base64), from its
    headers or its trailers."""
    checked = signed.checks.verify(digest.sha256, digest.md5, digest.check)
    sums = {name: checksum_value(value) for name, value in checked.items()}
    decoded = getattr(body, "decoded", None)
    if isinstance(body, ChunkedSink) and decoded is not None:
        sums.update(
            {name: checksum_value(value) for name, value in decoded.checksums.items()}
        )
    return sums


def echo_checksums(request: Any, sums: Mapping[str, str]) -> None:
    for algorithm, value in sums.items():
        request.setHeader(header_of(algorithm).encode("ascii"), value.encode("ascii"))


def copy_source(headers: Headers) -> tuple[str, str] | None:
    """The bucket and key ``x-amz-copy-source`` names, if it is there."""
    raw = _one(headers, b"x-amz-copy-source")
    if raw is None:
        return None
    quoted_path, _, version = raw.partition("?versionId=")
    path = unquote(quoted_path)
    if version and version != "null":
        raise S3Error("NotImplemented", "Object versions are not kept here", 501)
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: "
            "sourcebucket/sourcekey",
            ArgumentName="x-amz-copy-source",
            ArgumentValue=raw[:200],
        )
    return bucket, key
