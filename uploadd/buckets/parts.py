"""Multipart uploads as they are shown, and the rules of their parts:
records, pages of parts and of unfinished uploads, entity tags, what the
client said of the object (kept in the upload's metadata until it is
made), and which parts a completion may join. Pure functions."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from typing import Any

import attrs

from uploadd.buckets.listing import rolled_up
from uploadd.buckets.records import ObjectMeta
from uploadd.buckets.rules import Reason
from uploadd.errors import Invalid, TooLarge
from uploadd.store.buckets import PartRecord
from uploadd.store.interface import UploadRecord
from uploadd.uploads import rules

#: The protocol a multipart upload and its parts name in their records.
PROTOCOL = "s3"


@attrs.frozen
class MultipartUpload:
    """An unfinished multipart upload as listings show it."""

    upload_id: str
    bucket: str
    key: str
    owner_id: int
    initiated: float
    expires_at: float | None
    meta: ObjectMeta


@attrs.frozen
class PartsPage:
    """A page of an upload's parts, by number; when ``truncated``, the next
    page starts after ``next_marker``."""

    upload: MultipartUpload
    parts: list[PartRecord]
    truncated: bool
    next_marker: int | None


@attrs.frozen
class UploadsPage:
    """A page of a bucket's unfinished multipart uploads, by key and then
    by when they began, with the common prefixes keys were rolled up into;
    when ``truncated``, the next page starts after ``next_key_marker`` (and
    ``next_upload_id_marker``, when the page ended on an upload)."""

    uploads: list[MultipartUpload]
    prefixes: list[str]
    truncated: bool
    next_key_marker: str | None = None
    next_upload_id_marker: str | None = None


def multipart_etag(etags: Sequence[str]) -> str:
    """The entity tag of an object made of parts: the md5 of the parts'
    md5s (as bytes, in order), a dash, and how many parts there were."""
    joined = b"".join(bytes.fromhex(etag) for etag in etags)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(etags)}"


def same_etag(given: str, stored: str) -> bool:
    """Whether an entity tag a client names (quoted or not, any case) is
    ``stored``."""
    return given.strip().strip('"').lower() == stored


def meta_json(meta: ObjectMeta) -> str:
    return json.dumps(
        {
            "content_type": meta.content_type,
            "user": dict(meta.user),
            "headers": dict(meta.headers),
            "checksums": dict(meta.checksums),
        }
    )


def meta_of(record: UploadRecord) -> ObjectMeta:
    kept: dict[str, Any] = json.loads(record.metadata.get("meta") or "{}")
    return ObjectMeta(
        kept.get("content_type"),
        dict(kept.get("user", {})),
        dict(kept.get("headers", {})),
        dict(kept.get("checksums", {})),
    )


def shown(record: UploadRecord) -> MultipartUpload:
    return MultipartUpload(
        record.id,
        record.metadata.get("bucket", ""),
        record.metadata.get("key", ""),
        record.owner_id,
        record.created_at,
        record.expires_at,
        meta_of(record),
    )


def is_multipart(record: UploadRecord) -> bool:
    """Whether ``record`` is a multipart upload (not one of its parts)."""
    return (
        record.protocol == PROTOCOL
        and record.concat == rules.FINAL
        and rules.PART_OF not in record.metadata
    )


def check_part_number(number: int, max_parts: int) -> None:
    """Parts are numbered 1 to ``max_parts``."""
    if not 1 <= number <= max_parts:
        raise Invalid(
            f"part numbers run from 1 to {max_parts}, not {number}",
            reason=Reason.BAD_PART_NUMBER,
        )


def choose_parts(
    recorded: Sequence[PartRecord],
    listed: Sequence[tuple[int, str]],
    min_part: int,
    max_parts: int,
    max_size: int | None,
) -> list[PartRecord]:
    """The ``recorded`` parts a completion lists as (number, entity tag):
    at least one (else Invalid, reason NO_PARTS), numbered within range
    (BAD_PART_NUMBER), in ascending order once each (PART_ORDER), each
    recorded with that tag (BAD_PART), each but the last at least
    ``min_part`` bytes (PART_TOO_SMALL), together within ``max_size``
    (TooLarge)."""
    if not listed:
        raise Invalid("a completion lists at least one part", reason=Reason.NO_PARTS)
    numbers = [number for number, _ in listed]
    for number in numbers:
        check_part_number(number, max_parts)
    if any(later <= earlier for earlier, later in itertools.pairwise(numbers)):
        raise Invalid(
            "the parts are listed in ascending order of their numbers, once each",
            reason=Reason.PART_ORDER,
        )
    by_number = {part.part_number: part for part in recorded}
    chosen = []
    for number, etag in listed:
        part = by_number.get(number)
        if part is None or not same_etag(etag, part.etag):
            raise Invalid(
                f"part {number} with entity tag {etag[:70]} was not uploaded",
                reason=Reason.BAD_PART,
                part_number=number,
            )
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < min_part:
            raise Invalid(
                f"part {part.part_number} has {part.size} bytes; every part "
                f"but the last has at least {min_part}",
                reason=Reason.PART_TOO_SMALL,
                part_number=part.part_number,
                size=part.size,
                minimum=min_part,
            )
    if max_size is not None and sum(part.size for part in chosen) > max_size:
        raise TooLarge(max_size, "object", reason=Reason.TOO_LARGE)
    return chosen


def page_of_uploads(
    ordered: Sequence[UploadRecord],
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
    size: int,
) -> UploadsPage:
    """Up to ``size`` of the multipart uploads ``ordered`` (by key, then by
    when they began) after the markers; keys holding ``delimiter`` after
    ``prefix`` are rolled up into common prefixes, each given once (not one
    at or before ``key_marker``: a page ended on it)."""
    uploads: list[MultipartUpload] = []
    prefixes: list[str] = []
    last: tuple[str, str | None] | None = None
    for record in _after_markers(ordered, key_marker, upload_id_marker):
        key = record.metadata["key"]
        common = rolled_up(key, prefix, delimiter)
        if common is not None and (common in prefixes or common <= key_marker):
            continue
        if len(uploads) + len(prefixes) == size:
            if last is None:
                break
            return UploadsPage(uploads, prefixes, True, last[0], last[1])
        if common is None:
            uploads.append(shown(record))
            last = (key, record.id)
        else:
            prefixes.append(common)
            last = (common, None)
    return UploadsPage(uploads, prefixes, False)


def _after_markers(
    ordered: Sequence[UploadRecord], key_marker: str, upload_id_marker: str
) -> Sequence[UploadRecord]:
    """The uploads past the markers: keys after ``key_marker``, and with an
    ``upload_id_marker``, the uploads of that key after that one."""
    if not key_marker:
        return ordered
    if not upload_id_marker:
        return [r for r in ordered if r.metadata["key"] > key_marker]
    ids = [r.id for r in ordered if r.metadata["key"] == key_marker]
    if upload_id_marker in ids:
        skip = set(ids[: ids.index(upload_id_marker) + 1])
    else:
        skip = {i for i in ids if i <= upload_id_marker}
    return [
        r
        for r in ordered
        if r.metadata["key"] > key_marker
        or (r.metadata["key"] == key_marker and r.id not in skip)
    ]
