"""Objects as the core gives them, and what a client says of one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from uploadd.store.buckets import ObjectRecord


@attrs.frozen
class ObjectMeta:
    """What a client says of an object besides its bytes: its content type
    as given (None: guessed from the key), its user metadata (name to
    value), headers it is to be answered with (lower-case name to value:
    cache-control, content-disposition, ...), and checksums it vouched for
    the whole object with (algorithm to value, as the client wrote them)."""

    content_type: str | None = None
    user: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    headers: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    checksums: Mapping[str, str] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class ObjectInfo:
    """An object as a listing or a read shows it: ``etag`` is the entity
    tag without quotes (the file's md5, or ``<md5 of the parts' md5s>-N``
    for one made of N parts); ``modified`` when the key last got a file."""

    bucket: str
    key: str
    file_id: str
    size: int
    etag: str
    content_type: str
    modified: float
    user: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    headers: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    checksums: Mapping[str, str] = attrs.field(factory=dict, hash=False)

    @property
    def meta(self) -> ObjectMeta:
        """What the client said of it, to copy to another object."""
        return ObjectMeta(self.content_type, self.user, self.headers, self.checksums)


def object_info(record: ObjectRecord) -> ObjectInfo:
    """The object a stored record describes."""
    kept: dict[str, Any] = record.metadata
    return ObjectInfo(
        bucket=record.bucket,
        key=record.key,
        file_id=record.file_id,
        size=int(kept.get("size", 0)),
        etag=str(kept.get("etag", "")),
        content_type=str(kept.get("content_type") or "application/octet-stream"),
        modified=record.updated_at,
        user=dict(kept.get("user", {})),
        headers=dict(kept.get("headers", {})),
        checksums=dict(kept.get("checksums", {})),
    )
