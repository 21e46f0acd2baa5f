"""A bucket's keys page by page, as S3 lists them: under a prefix, after a
position, keys holding a delimiter rolled up into common prefixes, and
opaque tokens that continue a listing where a page ended.

The store is asked for bounded runs of keys in order; a common prefix
counts as one entry and the walk skips every key under it with a new query
from the prefix's successor, so a page costs a few queries whatever the
bucket holds.
"""

from __future__ import annotations

import base64
import binascii

import attrs

from uploadd.buckets.records import ObjectInfo, object_info
from uploadd.buckets.rules import MAX_KEY_BYTES, Reason
from uploadd.errors import Invalid
from uploadd.store.buckets import key_successor
from uploadd.store.interface import IMetadataStore

#: Most keys (and common prefixes) one listing gives.
MAX_KEYS = 1000


@attrs.frozen
class Listing:
    """A page of a bucket's objects: ``contents`` and ``prefixes`` (the
    common prefixes keys were rolled up into) in key order, together at
    most the page's size; when ``truncated``, ``next_token`` continues the
    listing (opaque) and ``next_marker`` is the last key or prefix given."""

    contents: list[ObjectInfo]
    prefixes: list[str]
    truncated: bool
    next_token: str | None = None
    next_marker: str | None = None


_TOKEN_VERSION = "1"


def continuation_token(last: str) -> str:
    """The token that continues a listing after ``last`` (a key or a common
    prefix given): opaque to clients, URL-safe."""
    encoded = base64.urlsafe_b64encode(last.encode("utf-8")).decode("ascii")
    return _TOKEN_VERSION + encoded.rstrip("=")


def token_position(token: str) -> str:
    """Where a listing continues from: what :func:`continuation_token` was
    given; Invalid for a token this server did not make."""
    try:
        if not token.startswith(_TOKEN_VERSION) or len(token) > 2 * MAX_KEY_BYTES:
            raise ValueError(token)
        body = token[1:]
        position = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return position.decode("utf-8")
    except (ValueError, binascii.Error):
        raise Invalid(
            "the continuation token is not one this server gave",
            reason=Reason.BAD_TOKEN,
        ) from None


def rolled_up(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix ``key`` is rolled up into: the key up to the first
    ``delimiter`` after ``prefix``, inclusive; None if none."""
    if not delimiter:
        return None
    found = key.find(delimiter, len(prefix))
    return None if found < 0 else key[: found + len(delimiter)]


@attrs.define
class _Walk:
    """A listing page being filled."""

    size: int
    contents: list[ObjectInfo] = attrs.field(factory=list)
    prefixes: list[str] = attrs.field(factory=list)
    last: str | None = None

    @property
    def room(self) -> int:
        return self.size - len(self.contents) - len(self.prefixes)

    @property
    def full(self) -> bool:
        return self.room <= 0

    def add_key(self, info: ObjectInfo) -> None:
        self.contents.append(info)
        self.last = info.key

    def add_prefix(self, common: str) -> None:
        self.prefixes.append(common)
        self.last = common

    def listing(self, truncated: bool) -> Listing:
        if not truncated or self.last is None:
            return Listing(self.contents, self.prefixes, False)
        return Listing(
            self.contents,
            self.prefixes,
            True,
            continuation_token(self.last),
            self.last,
        )


async def walk_keys(
    store: IMetadataStore,
    bucket: str,
    prefix: str,
    delimiter: str,
    size: int,
    after: str,
) -> Listing:
    """Up to ``size`` entries of ``bucket`` after ``after``: keys under
    ``prefix`` and the common prefixes keys holding ``delimiter`` roll up
    into. A common prefix at or before ``after`` was given before (the
    position is one a page ended on), and is not given again."""
    page = _Walk(size)
    if page.full:
        return page.listing(False)
    position: str | None = after
    including = truncated = False
    while position is not None and not truncated:
        wanted = page.room + 1
        batch = await store.list_objects(bucket, prefix, position, wanted, including)
        jumped = False
        for record in batch:
            if page.full:
                truncated = True  # an entry lies past the full page
                break
            common = rolled_up(record.key, prefix, delimiter)
            if common is None:
                page.add_key(object_info(record))
                position, including = record.key, False
                continue
            if common > after:
                page.add_prefix(common)
            # Every key under the prefix is rolled up into it: skip them.
            position, including, jumped = key_successor(common), True, True
            break
        if not jumped and len(batch) < wanted:
            break
    return page.listing(truncated)
