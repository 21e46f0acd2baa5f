"""The store's side of buckets: their records and the part of the metadata
store interface that keeps them.

A bucket is one user's named set of objects; an object is a key in a bucket
naming the newest file stored under it (older versions are that file's
``parent`` chain in the file library), with the metadata a client gave it.
Access keys let a program sign requests as a user; their secrets are kept
sealed (``uploadd/auth/access_keys.py``). The parts of a multipart upload
map a part number to the complete partial upload holding its bytes.

Keys are ordered as S3 orders them: by Unicode code point, which is the
byte order of their UTF-8 (SQLite's BINARY collation, PostgreSQL's "C").
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import attrs
from zope.interface import Interface


@attrs.frozen
class BucketRecord:
    """A bucket: its unique name, its owner, and its CORS rules (the
    protocol's own document, kept as text; None: none set)."""

    name: str
    owner_id: int
    created_at: float
    cors: str | None = None


@attrs.frozen
class ObjectRecord:
    """The file ``key`` names in ``bucket`` now, and what the client said of
    it (``metadata``: JSON-able; the core decides what goes in it)."""

    bucket: str
    key: str
    file_id: str
    metadata: dict[str, Any] = attrs.field(factory=dict, hash=False)
    updated_at: float = 0.0


@attrs.frozen
class AccessKeyRecord:
    """An access key of ``user_id``, limited to ``scope``; ``sealed`` is its
    secret encrypted under a key only the server has. A revoked key stays
    listed with the time it was revoked."""

    key_id: str
    user_id: int
    scope: str
    sealed: str
    created_at: float
    revoked_at: float | None = None


@attrs.frozen
class PartRecord:
    """Part ``part_number`` of the multipart upload ``upload_id``: its bytes
    are the complete partial upload ``part_upload_id``; ``etag`` is their md5
    in hex; a checksum the client sent with them is kept by algorithm."""

    upload_id: str
    part_number: int
    part_upload_id: str
    size: int
    etag: str
    created_at: float
    checksum_algorithm: str | None = None
    checksum: str | None = None


#: The largest code point, and the surrogates no UTF-8 text holds.
_LAST, _SURROGATES = 0x10FFFF, range(0xD800, 0xE000)


def key_successor(prefix: str) -> str | None:
    """The smallest text that sorts after every text starting with
    ``prefix`` (by code point), or None when nothing does (an empty prefix,
    or one of nothing but U+10FFFF): where a listing that skips everything
    under ``prefix`` goes on."""
    stripped = prefix.rstrip(chr(_LAST))
    if not stripped:
        return None
    following = ord(stripped[-1]) + 1
    if following in _SURROGATES:
        following = _SURROGATES.stop
    return stripped[:-1] + chr(following)


class IBucketStore(Interface):
    """Buckets, objects, access keys and multipart parts; every method
    returns an awaitable."""

    def add_bucket(bucket: BucketRecord) -> Awaitable[None]:
        """Record a new bucket; Conflict if its name is taken (by anyone) or
        its owner is unknown."""

    def get_bucket(name: str) -> Awaitable[BucketRecord | None]:
        """The bucket called ``name``."""

    def list_buckets(owner_id: int | None) -> Awaitable[list[BucketRecord]]:
        """One owner's buckets (None: everyone's), by name."""

    def delete_bucket(name: str) -> Awaitable[bool]:
        """Forget an empty bucket; Conflict while it holds an object, False
        if there is no such bucket."""

    def set_bucket_cors(name: str, cors: str | None) -> Awaitable[bool]:
        """Set (or clear) a bucket's CORS rules; False if no such bucket."""

    def put_object(record: ObjectRecord) -> Awaitable[ObjectRecord | None]:
        """Record the object at ``record.bucket``/``record.key``, replacing
        the one there; the one it replaced, if any. Conflict if the bucket
        or the file is unknown. The object goes with its file."""

    def get_object(bucket: str, key: str) -> Awaitable[ObjectRecord | None]:
        """The object ``key`` of ``bucket``."""

    def list_objects(
        bucket: str,
        prefix: str = "",
        after: str = "",
        limit: int = 1000,
        including: bool = False,
    ) -> Awaitable[list[ObjectRecord]]:
        """Up to ``limit`` objects of ``bucket`` whose key starts with
        ``prefix`` and sorts after ``after`` (or is it, ``including``), in
        key order (by code point: UTF-8's byte order)."""

    def delete_object(bucket: str, key: str) -> Awaitable[bool]:
        """Forget the object ``key`` of ``bucket`` (not its file); False if
        there was none."""

    def has_objects(bucket: str) -> Awaitable[bool]:
        """Whether ``bucket`` holds any object."""

    def add_access_key(record: AccessKeyRecord) -> Awaitable[None]:
        """Record a new access key; Conflict if its id is taken or its user
        unknown. It goes with its user."""

    def get_access_key(key_id: str) -> Awaitable[AccessKeyRecord | None]:
        """The access key ``key_id``, revoked or not."""

    def access_keys_of(user_id: int | None) -> Awaitable[list[AccessKeyRecord]]:
        """One user's access keys (None: everyone's), oldest first."""

    def revoke_access_key(key_id: str, now: float) -> Awaitable[bool]:
        """Mark a key revoked at ``now``; False if it is unknown or was
        revoked already."""

    def save_part(part: PartRecord) -> Awaitable[PartRecord | None]:
        """Record a part of a multipart upload, replacing the one of the same
        number; the part it replaced, if any. Conflict if the upload is
        unknown. The parts go with their upload."""

    def parts_of(upload_id: str) -> Awaitable[list[PartRecord]]:
        """The recorded parts of a multipart upload, by part number."""

    def delete_parts(upload_id: str) -> Awaitable[int]:
        """Forget every part of a multipart upload (not the partial uploads
        holding their bytes); how many there were."""
