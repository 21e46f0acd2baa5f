"""S3's multipart uploads: CreateMultipartUpload, UploadPart (streamed into
its part's partial upload), ListParts, ListMultipartUploads,
AbortMultipartUpload and CompleteMultipartUpload, each translated to
:class:`~uploadd.buckets.Multipart`.

A part answers its md5 as its entity tag, and echoes the checksum it was
sent with (kept with the part and shown by ListParts); a completion answers
the object's entity tag, ``<md5 of the parts' md5s>-<number of parts>``.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

from uploadd.api.gate import BodyPlan, IngestGate, append_plan, upload_of
from uploadd.api.http import arg, base_url, empty
from uploadd.api.s3.bodies import (
    Signed,
    Staging,
    decoder,
    echo_checksums,
    header_fields,
    meta_of,
    verified_checksums,
)
from uploadd.api.s3.buckets_ops import count_arg, encoding_of, rolled_up, xml_answer
from uploadd.api.s3.checksums import Checksum
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.xml import (
    Child,
    document,
    encoded,
    iso_time,
    owner,
    parse_complete,
    quoted,
)
from uploadd.auth.tokens import Principal
from uploadd.buckets import Multipart, PartBody
from uploadd.buckets.multipart import MAX_LISTED
from uploadd.deferreds import shield
from uploadd.ingest.blob import Digest
from uploadd.uploads.checks import BodyCheck


@attrs.frozen
class UploadPart:
    """The plan of an UploadPart body: into its part's partial upload."""

    signed: Signed
    part: PartBody


@attrs.frozen
class MultipartDocument:
    """The plan of a CreateMultipartUpload (``upload_id`` None) or of a
    CompleteMultipartUpload's document."""

    signed: Signed
    bucket: str
    key: str
    upload_id: str | None


def part_number(text: str | None) -> int:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 6:
        raise S3Error(
            "InvalidArgument",
            "Part number must be an integer between 1 and 10000, inclusive",
            ArgumentName="partNumber",
            ArgumentValue=(text or "")[:40],
        )
    return int(text)


@attrs.frozen
class MultipartOps:
    _multipart: Multipart
    _staging: Staging
    _gate: IngestGate
    _public_url: str = ""

    # -- parts ---------------------------------------------------------------------

    async def plan_part(
        self,
        signed: Signed,
        bucket: str,
        key: str,
        upload_id: str,
        number: str | None,
        length: int | None,
    ) -> BodyPlan:
        """Admit a part's body into a new partial upload of ``upload_id``."""
        checks = signed.checks
        check = None
        if checks.algorithm is not None and checks.expected is not None:
            check = BodyCheck(
                Checksum(checks.algorithm),
                checks.expected,
                f"x-amz-checksum-{checks.algorithm.lower()}",
            )
        verified = signed.verified
        body = await self._multipart.begin_part(
            signed.principal,
            bucket,
            key,
            upload_id,
            part_number(number),
            verified.decoded_length if verified.streaming else length,
            check,
        )
        plan = append_plan(body.append, context=UploadPart(signed, body))
        return attrs.evolve(plan, principal=signed.principal, wrap=decoder(verified))

    async def finish_part(
        self, request: IRequest, plan: BodyPlan, body: Any, digest: Digest
    ) -> bytes:
        sent: UploadPart = plan.context
        try:
            sums = verified_checksums(sent.signed, body, digest)
        except S3Error:
            # The part's bytes go; the upload stays as it was.
            await sent.part.append.aborted(0)
            raise
        checksum = next(iter(sums.items()), None)
        record = await shield(
            Deferred.fromCoroutine(
                sent.part.land(sent.signed.principal, digest, checksum)
            )
        )
        self._gate.stored(upload_of(request))
        request.setHeader(b"etag", quoted(record.etag).encode("ascii"))
        echo_checksums(request, sums)
        return empty(request, 200)

    # -- the upload ------------------------------------------------------------------

    async def finish_document(
        self, request: IRequest, plan: BodyPlan, digest: Digest
    ) -> bytes:
        content = await self._staging.read(plan, digest)
        asked: MultipartDocument = plan.context
        principal = asked.signed.principal
        if asked.upload_id is None:
            return await self._create(request, principal, asked)
        listed = parse_complete(content)
        info = await shield(
            Deferred.fromCoroutine(
                self._multipart.complete(
                    principal,
                    asked.bucket,
                    asked.key,
                    asked.upload_id,
                    [(number, etag) for number, etag, _ in listed],
                )
            )
        )
        self._gate.stored(upload_of(request), info.file_id)
        base = base_url(request, self._public_url)
        body = document(
            "CompleteMultipartUploadResult",
            [
                ("Location", f"{base}/{asked.bucket}/{asked.key}"),
                ("Bucket", asked.bucket),
                ("Key", asked.key),
                ("ETag", quoted(info.etag)),
            ],
        )
        return xml_answer(request, 200, body)

    async def _create(
        self, request: IRequest, principal: Principal, asked: MultipartDocument
    ) -> bytes:
        headers: Headers = request.requestHeaders
        meta = meta_of(header_fields(headers))
        upload = await self._multipart.create(principal, asked.bucket, asked.key, meta)
        algorithm = headers.getRawHeaders(b"x-amz-checksum-algorithm")
        if algorithm:
            request.setHeader(b"x-amz-checksum-algorithm", algorithm[-1].upper())
        body = document(
            "InitiateMultipartUploadResult",
            [
                ("Bucket", asked.bucket),
                ("Key", asked.key),
                ("UploadId", upload.upload_id),
            ],
        )
        return xml_answer(request, 200, body)

    async def abort(
        self,
        request: IRequest,
        principal: Principal,
        bucket: str,
        key: str,
        upload_id: str,
    ) -> bytes:
        await self._multipart.abort(principal, bucket, key, upload_id)
        return empty(request, 204)

    # -- listings ----------------------------------------------------------------------

    async def list_parts(
        self,
        request: IRequest,
        principal: Principal,
        bucket: str,
        key: str,
        upload_id: str,
    ) -> bytes:
        marker = count_arg(request, "part-number-marker", 0)
        size = count_arg(request, "max-parts", MAX_LISTED)
        page = await self._multipart.list_parts(
            principal, bucket, key, upload_id, marker, size
        )
        who = owner(page.upload.owner_id, principal.username)
        parts: list[Child] = []
        for part in page.parts:
            fields: list[Child] = [
                ("PartNumber", part.part_number),
                ("LastModified", iso_time(part.created_at)),
                ("ETag", quoted(part.etag)),
                ("Size", part.size),
            ]
            if part.checksum_algorithm and part.checksum:
                fields.append((f"Checksum{part.checksum_algorithm}", part.checksum))
            parts.append(("Part", tuple(fields)))
        body = document(
            "ListPartsResult",
            [
                ("Bucket", bucket),
                ("Key", key),
                ("UploadId", upload_id),
                ("Initiator", who),
                ("Owner", who),
                ("StorageClass", "STANDARD"),
                ("PartNumberMarker", marker),
                *(
                    (("NextPartNumberMarker", page.next_marker),)
                    if page.next_marker is not None
                    else ()
                ),
                ("MaxParts", size),
                ("IsTruncated", page.truncated),
                *parts,
            ],
        )
        return xml_answer(request, 200, body)

    async def list_uploads(
        self, request: IRequest, principal: Principal, bucket: str
    ) -> bytes:
        url = encoding_of(request)
        prefix, delimiter = rolled_up(request)
        key_marker = arg(request, "key-marker") or ""
        id_marker = arg(request, "upload-id-marker") or ""
        size = count_arg(request, "max-uploads", MAX_LISTED)
        page = await self._multipart.list_uploads(
            principal, bucket, prefix, delimiter, key_marker, id_marker, size
        )
        uploads: list[Child] = []
        for upload in page.uploads:
            who = owner(upload.owner_id, principal.username)
            uploads.append(
                (
                    "Upload",
                    (
                        ("Key", encoded(upload.key, url)),
                        ("UploadId", upload.upload_id),
                        ("Initiator", who),
                        ("Owner", who),
                        ("StorageClass", "STANDARD"),
                        ("Initiated", iso_time(upload.initiated)),
                    ),
                )
            )
        body = document(
            "ListMultipartUploadsResult",
            [
                ("Bucket", bucket),
                ("KeyMarker", encoded(key_marker, url)),
                ("UploadIdMarker", id_marker),
                *(
                    (
                        ("NextKeyMarker", encoded(page.next_key_marker, url)),
                        ("NextUploadIdMarker", page.next_upload_id_marker or ""),
                    )
                    if page.truncated
                    else ()
                ),
                ("Prefix", encoded(prefix, url)),
                *((("Delimiter", encoded(delimiter, url)),) if delimiter else ()),
                ("MaxUploads", size),
                ("IsTruncated", page.truncated),
                *((("EncodingType", "url"),) if url else ()),
                *uploads,
                *(
                    ("CommonPrefixes", (("Prefix", encoded(common, url)),))
                    for common in page.prefixes
                ),
            ],
        )
        return xml_answer(request, 200, body)
