"""S3's bucket operations: ListBuckets, CreateBucket, HeadBucket,
DeleteBucket, GetBucketLocation, GetBucketVersioning (never enabled here),
Get/Put/DeleteBucketCors, and the object listings ListObjectsV2 and
ListObjects (version 1), each translated to :class:`~uploadd.buckets.Buckets`.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.web.iweb import IRequest

from uploadd.api.http import arg, empty
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.xml import (
    CONTENT_TYPE,
    Child,
    cors_document,
    document,
    encoded,
    iso_time,
    owner,
    parse_cors,
    parse_location,
    quoted,
    text_document,
)
from uploadd.auth.tokens import Principal
from uploadd.buckets import MAX_KEYS, Buckets, Listing

#: Listings give at most this many keys, whatever max-keys asks (S3's).
LIST_LIMIT = MAX_KEYS


def xml_answer(request: IRequest, status: int, body: bytes) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", CONTENT_TYPE)
    request.setHeader(b"content-length", b"%d" % len(body))
    return body


def count_arg(request: IRequest, name: str, default: int) -> int:
    """A non-negative integer argument (``max-keys``, ``max-uploads``...)."""
    text = arg(request, name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise S3Error(
            "InvalidArgument",
            f"Provided {name} not an integer or within integer range",
            ArgumentName=name,
            ArgumentValue=text[:40],
        )
    return int(text)


def rolled_up(request: IRequest) -> tuple[str, str]:
    """A listing's ``prefix`` and ``delimiter`` (empty when not given)."""
    return arg(request, "prefix") or "", arg(request, "delimiter") or ""


def encoding_of(request: IRequest) -> bool:
    """Whether keys are to be URL-encoded in the answer (``encoding-type``)."""
    kind = arg(request, "encoding-type")
    if kind is None:
        return False
    if kind != "url":
        raise S3Error(
            "InvalidArgument",
            "Invalid Encoding Method specified in Request",
            ArgumentName="encoding-type",
            ArgumentValue=kind[:40],
        )
    return True


@attrs.frozen
class BucketOps:
    _buckets: Buckets
    region: str

    async def list_buckets(self, request: IRequest, principal: Principal) -> bytes:
        found = await self._buckets.list_buckets(principal)
        body = document(
            "ListAllMyBucketsResult",
            [
                ("Owner", owner(principal.user_id, principal.username)),
                (
                    "Buckets",
                    tuple(
                        (
                            "Bucket",
                            (
                                ("Name", bucket.name),
                                ("CreationDate", iso_time(bucket.created_at)),
                            ),
                        )
                        for bucket in found
                    ),
                ),
            ],
        )
        return xml_answer(request, 200, body)

    async def create(
        self, request: IRequest, principal: Principal, name: str, content: bytes
    ) -> bytes:
        location = parse_location(content)
        if location and location != self.region:
            raise S3Error(
                "IllegalLocationConstraintException",
                f"The {location} location constraint is incompatible for the "
                f"region specific endpoint this request was sent to "
                f"({self.region}).",
            )
        await self._buckets.create(principal, name)
        request.setHeader(b"location", f"/{name}".encode())
        return empty(request, 200)

    async def head(self, request: IRequest, principal: Principal, name: str) -> bytes:
        await self._buckets.get(principal, name, "list")
        request.setHeader(b"x-amz-bucket-region", self.region.encode("ascii"))
        return empty(request, 200)

    async def delete(self, request: IRequest, principal: Principal, name: str) -> bytes:
        await self._buckets.delete(principal, name)
        return empty(request, 204)

    async def location(
        self, request: IRequest, principal: Principal, name: str
    ) -> bytes:
        await self._buckets.get(principal, name, "list")
        # S3 names its first region by no constraint at all.
        region = "" if self.region == "us-east-1" else self.region
        return xml_answer(request, 200, text_document("LocationConstraint", region))

    async def versioning(
        self, request: IRequest, principal: Principal, name: str
    ) -> bytes:
        await self._buckets.get(principal, name, "list")
        return xml_answer(request, 200, document("VersioningConfiguration", []))

    # -- CORS ---------------------------------------------------------------------

    async def get_cors(
        self, request: IRequest, principal: Principal, name: str
    ) -> bytes:
        bucket = await self._buckets.get(principal, name, "manage")
        if not bucket.cors:
            raise S3Error(
                "NoSuchCORSConfiguration", "The CORS configuration does not exist"
            )
        return xml_answer(request, 200, cors_document(json.loads(bucket.cors)))

    async def put_cors(
        self, request: IRequest, principal: Principal, name: str, content: bytes
    ) -> bytes:
        rules = parse_cors(content)
        await self._buckets.set_cors(principal, name, json.dumps(rules))
        return empty(request, 200)

    async def delete_cors(
        self, request: IRequest, principal: Principal, name: str
    ) -> bytes:
        await self._buckets.set_cors(principal, name, None)
        return empty(request, 204)

    # -- listings -------------------------------------------------------------------

    async def list_v2(
        self, request: IRequest, principal: Principal, name: str
    ) -> bytes:
        url = encoding_of(request)
        prefix, delimiter = rolled_up(request)
        size = count_arg(request, "max-keys", LIST_LIMIT)
        token, after = arg(request, "continuation-token"), arg(request, "start-after")
        listing = await self._buckets.list_objects(
            principal, name, prefix, delimiter, size, after or "", token
        )
        fetch_owner = (arg(request, "fetch-owner") or "").lower() == "true"
        children: list[Child] = [
            ("Name", name),
            ("Prefix", encoded(prefix, url)),
            *((("StartAfter", encoded(after, url)),) if after is not None else ()),
            *((("ContinuationToken", token),) if token is not None else ()),
            ("KeyCount", len(listing.contents) + len(listing.prefixes)),
            ("MaxKeys", size),
            *((("Delimiter", encoded(delimiter, url)),) if delimiter else ()),
            ("IsTruncated", listing.truncated),
            *(
                (("NextContinuationToken", listing.next_token),)
                if listing.truncated
                else ()
            ),
            *((("EncodingType", "url"),) if url else ()),
            *self._entries(listing, url, principal if fetch_owner else None),
        ]
        return xml_answer(request, 200, document("ListBucketResult", children))

    async def list_v1(
        self, request: IRequest, principal: Principal, name: str
    ) -> bytes:
        url = encoding_of(request)
        prefix, delimiter = rolled_up(request)
        size = count_arg(request, "max-keys", LIST_LIMIT)
        marker = arg(request, "marker") or ""
        listing = await self._buckets.list_objects(
            principal, name, prefix, delimiter, size, marker
        )
        children: list[Child] = [
            ("Name", name),
            ("Prefix", encoded(prefix, url)),
            ("Marker", encoded(marker, url)),
            *(
                (("NextMarker", encoded(listing.next_marker, url)),)
                if listing.truncated
                else ()
            ),
            ("MaxKeys", size),
            *((("Delimiter", encoded(delimiter, url)),) if delimiter else ()),
            ("IsTruncated", listing.truncated),
            *((("EncodingType", "url"),) if url else ()),
            *self._entries(listing, url, principal),
        ]
        return xml_answer(request, 200, document("ListBucketResult", children))

    @staticmethod
    def _entries(
        listing: Listing, url: bool, shown_owner: Principal | None
    ) -> list[Child]:
        entries: list[Child] = []
        for info in listing.contents:
            fields: list[Any] = [
                ("Key", encoded(info.key, url)),
                ("LastModified", iso_time(info.modified)),
                ("ETag", quoted(info.etag)),
                ("Size", info.size),
                ("StorageClass", "STANDARD"),
            ]
            if shown_owner is not None:
                fields.append(
                    ("Owner", owner(shown_owner.user_id, shown_owner.username))
                )
            entries.append(("Contents", tuple(fields)))
        for common in listing.prefixes:
            entries.append(("CommonPrefixes", (("Prefix", encoded(common, url)),)))
        return entries
