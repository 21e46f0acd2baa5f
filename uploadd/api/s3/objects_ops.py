"""S3's object operations: PutObject (streamed), CopyObject, GetObject and
HeadObject (see :mod:`.serving`), DeleteObject and DeleteObjects, each
translated to :class:`~uploadd.buckets.Buckets`.

A PutObject answers the object's entity tag (its md5, quoted) and echoes the
checksum it was sent with; the object keeps its ``x-amz-meta-*``, its
content type as given and the headers S3 keeps (Cache-Control,
Content-Disposition, Content-Encoding, Content-Language, Expires). Deleting
a key that is not there succeeds, as in S3.
"""

from __future__ import annotations

import uuid
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from uploadd.api.gate import BodyPlan, IngestGate, upload_of
from uploadd.api.http import empty
from uploadd.api.s3.bodies import (
    Signed,
    Staging,
    echo_checksums,
    header_fields,
    meta_of,
    verified_checksums,
)
from uploadd.api.s3.buckets_ops import xml_answer
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.faults import core_error
from uploadd.api.s3.serving import ObjectReader, entity_tags, http_date
from uploadd.api.s3.xml import Child, document, iso_time, parse_delete, quoted
from uploadd.auth.tokens import Principal
from uploadd.buckets import Buckets, ObjectInfo, ObjectMeta, Reason
from uploadd.deferreds import shield
from uploadd.errors import UploaddError
from uploadd.ingest.blob import Digest
from uploadd.store.blobs import BlobStore


@attrs.frozen
class PutObject:
    """The plan of a PutObject body: into staging blob ``blob_id``."""

    signed: Signed
    bucket: str
    key: str
    blob_id: str
    meta: ObjectMeta


@attrs.frozen
class CopyObject:
    """The plan of a CopyObject (no body to speak of)."""

    signed: Signed
    bucket: str
    key: str
    source: tuple[str, str]
    meta: ObjectMeta | None


@attrs.frozen
class DeleteObjects:
    """The plan of a DeleteObjects document."""

    signed: Signed
    bucket: str


_COPY_CONDITIONS = (
    b"x-amz-copy-source-if-match",
    b"x-amz-copy-source-if-none-match",
    b"x-amz-copy-source-if-modified-since",
    b"x-amz-copy-source-if-unmodified-since",
)


def _one(headers: Headers, name: bytes) -> bytes | None:
    values = headers.getRawHeaders(name)
    return values[-1] if values else None


def check_copy_conditions(headers: Headers, source: ObjectInfo) -> None:
    """A copy's conditions on its source (``x-amz-copy-source-if-*``):
    ``PreconditionFailed`` when one does not hold."""
    failed = None
    match = _one(headers, b"x-amz-copy-source-if-match")
    none_match = _one(headers, b"x-amz-copy-source-if-none-match")
    modified = int(source.modified)
    unmodified_since = http_date(
        _one(headers, b"x-amz-copy-source-if-unmodified-since")
    )
    modified_since = http_date(_one(headers, b"x-amz-copy-source-if-modified-since"))
    if match is not None:
        tags = entity_tags(match)
        if "*" not in tags and source.etag not in tags:
            failed = "x-amz-copy-source-If-Match"
    elif unmodified_since is not None and modified > unmodified_since:
        failed = "x-amz-copy-source-If-Unmodified-Since"
    if none_match is not None:
        tags = entity_tags(none_match)
        if "*" in tags or source.etag in tags:
            failed = "x-amz-copy-source-If-None-Match"
    elif modified_since is not None and modified <= modified_since:
        failed = "x-amz-copy-source-If-Modified-Since"
    if failed is not None:
        raise S3Error(
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
            Condition=failed,
        )


@attrs.frozen
class ObjectOps:
    _buckets: Buckets
    _blobs: BlobStore
    _staging: Staging
    _reader: ObjectReader
    _gate: IngestGate

    # -- PutObject ----------------------------------------------------------------

    async def plan_put(
        self, signed: Signed, bucket: str, key: str, headers: Headers
    ) -> BodyPlan:
        """Admit an object's body if the caller may store ``key``."""
        meta = meta_of(header_fields(headers))
        await self._buckets.writable(signed.principal, bucket, key)
        blob_id = uuid.uuid4().hex
        context = PutObject(signed, bucket, key, blob_id, meta)
        return self._staging.plan(signed, context, blob_id=blob_id)

    async def finish_put(
        self, request: IRequest, plan: BodyPlan, body: Any, digest: Digest
    ) -> bytes:
        put: PutObject = plan.context
        try:
            sums = verified_checksums(put.signed, body, digest)
        except S3Error:
            await self._staging.drop(plan)
            raise
        meta = attrs.evolve(put.meta, checksums=sums)
        info: ObjectInfo = await shield(
            Deferred.fromCoroutine(
                self._buckets.store_object(
                    put.signed.principal,
                    put.bucket,
                    put.key,
                    put.blob_id,
                    digest,
                    meta,
                )
            )
        )
        self._gate.stored(upload_of(request), info.file_id)
        request.setHeader(b"etag", quoted(info.etag).encode("ascii"))
        echo_checksums(request, sums)
        return empty(request, 200)

    # -- CopyObject ---------------------------------------------------------------

    def plan_copy(
        self,
        signed: Signed,
        bucket: str,
        key: str,
        source: tuple[str, str],
        headers: Headers,
    ) -> BodyPlan:
        directive = (_one(headers, b"x-amz-metadata-directive") or b"COPY").upper()
        if directive not in (b"COPY", b"REPLACE"):
            raise S3Error(
                "InvalidArgument",
                "Unknown metadata directive.",
                ArgumentName="x-amz-metadata-directive",
                ArgumentValue=directive.decode("latin-1")[:40],
            )
        meta = meta_of(header_fields(headers)) if directive == b"REPLACE" else None
        return self._staging.document(
            signed, CopyObject(signed, bucket, key, source, meta)
        )

    async def finish_copy(self, request: IRequest, plan: BodyPlan) -> bytes:
        await self._staging.drop(plan)
        copy: CopyObject = plan.context
        principal = copy.signed.principal
        headers = request.requestHeaders
        if any(headers.hasHeader(name) for name in _COPY_CONDITIONS):
            source, _ = await self._buckets.get_object(principal, *copy.source)
            check_copy_conditions(headers, source)
        info: ObjectInfo = await shield(
            Deferred.fromCoroutine(
                self._buckets.copy_object(
                    principal, *copy.source, copy.bucket, copy.key, copy.meta
                )
            )
        )
        self._gate.stored(upload_of(request), info.file_id)
        body = document(
            "CopyObjectResult",
            [("LastModified", iso_time(info.modified)), ("ETag", quoted(info.etag))],
        )
        return xml_answer(request, 200, body)

    # -- reading and deleting ------------------------------------------------------

    async def read(
        self, request: IRequest, principal: Principal, bucket: str, key: str
    ) -> Resource | bytes:
        info, record = await self._buckets.get_object(principal, bucket, key)
        return await self._reader.answer(
            request, info, record, self._blobs.path(record.id)
        )

    async def delete(
        self, request: IRequest, principal: Principal, bucket: str, key: str
    ) -> bytes:
        await self._buckets.delete_object(principal, bucket, key)
        return empty(request, 204)

    async def finish_delete_objects(
        self, request: IRequest, plan: BodyPlan, digest: Digest
    ) -> bytes:
        """Delete each key a Delete document names; what became of each."""
        content = await self._staging.read(plan, digest)
        asked: DeleteObjects = plan.context
        quiet, keys = parse_delete(content)
        principal = asked.signed.principal
        outcomes: list[Child] = []
        for key in keys:
            try:
                await self._buckets.delete_object(principal, asked.bucket, key)
            except UploaddError as error:
                if error.extra.get("reason") == Reason.NO_BUCKET:
                    raise
                refused, _ = core_error(error)
                outcomes.append(
                    (
                        "Error",
                        (
                            ("Key", key),
                            ("Code", refused.code),
                            ("Message", refused.message),
                        ),
                    )
                )
                continue
            if not quiet:
                outcomes.append(("Deleted", (("Key", key),)))
        return xml_answer(request, 200, document("DeleteResult", outcomes))
