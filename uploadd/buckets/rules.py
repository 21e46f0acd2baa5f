"""The rules of buckets and keys, and what refusals say: S3's bucket naming
rules, what makes a key, the file name and media type an object's file
gets, and which of a caller's scopes each use of a bucket needs. Pure
functions raising the core's errors, each with a :class:`Reason`."""

from __future__ import annotations

import enum
import re

from uploadd.auth.tokens import Action, Principal
from uploadd.errors import Forbidden, Invalid
from uploadd.library import clean_content_type, clean_filename

#: A key's longest, in bytes of UTF-8.
MAX_KEY_BYTES = 1024


class Reason(enum.StrEnum):
    """What exactly was refused, in ``extra["reason"]`` of the error raised
    (by every module of :mod:`uploadd.buckets`)."""

    BAD_BUCKET_NAME = "bad-bucket-name"
    BUCKET_TAKEN = "bucket-taken"  # by another user
    BUCKET_OWNED = "bucket-owned"  # by the caller already
    NO_BUCKET = "no-bucket"
    BUCKET_NOT_EMPTY = "bucket-not-empty"
    NOT_YOURS = "not-yours"  # the bucket or upload is another user's
    NOT_ALLOWED = "not-allowed"  # the caller's scopes do not reach this
    BAD_KEY = "bad-key"
    KEY_TOO_LONG = "key-too-long"
    NO_KEY = "no-key"
    BAD_ARGUMENT = "bad-argument"
    BAD_TOKEN = "bad-token"
    COPY_TO_ITSELF = "copy-to-itself"
    SOURCE_ELSEWHERE = "source-elsewhere"
    NO_UPLOAD = "no-upload"
    BAD_PART_NUMBER = "bad-part-number"
    NO_PARTS = "no-parts"
    PART_ORDER = "part-order"
    BAD_PART = "bad-part"
    PART_TOO_SMALL = "part-too-small"
    INCOMPLETE_BODY = "incomplete-body"
    TOO_LARGE = "too-large"


#: What each use of a bucket needs of the caller's scopes: managing buckets
#: is for writers (not read-only or upload-only keys); reading needs READ,
#: listing LIST, storing CREATE, deleting DELETE.
NEEDS: dict[str, frozenset[Action]] = {
    "manage": frozenset({Action.CREATE, Action.DELETE}),
    "list": frozenset({Action.LIST}),
    "read": frozenset({Action.READ}),
    "write": frozenset({Action.CREATE}),
    "delete": frozenset({Action.DELETE}),
}

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$")
#: Names S3 keeps for itself; refused so that a bucket can move to S3.
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket_name(name: str) -> None:
    """S3's bucket naming rules: 3 to 63 lowercase letters, digits, dots
    and hyphens, starting and ending with a letter or digit, no two dots
    together, not an IP address, none of the names S3 reserves."""
    if (
        not _BUCKET_NAME.match(name)
        or ".." in name
        or _IPV4.match(name)
        or name.startswith(_RESERVED_PREFIXES)
        or name.endswith(_RESERVED_SUFFIXES)
    ):
        raise Invalid(
            f"{name[:70]!r} is not a bucket name: 3-63 lowercase letters, digits, "
            "'.' and '-', starting and ending with a letter or digit, no '..', "
            "not an IP address",
            reason=Reason.BAD_BUCKET_NAME,
        )


def check_key(key: str) -> None:
    """A key is 1 to 1024 bytes of UTF-8 without NUL."""
    if not key:
        raise Invalid("an object needs a key", reason=Reason.BAD_KEY)
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise Invalid("the key is not UTF-8 text", reason=Reason.BAD_KEY) from None
    if size > MAX_KEY_BYTES:
        raise Invalid(
            f"the key has {size} bytes of UTF-8; at most {MAX_KEY_BYTES}",
            reason=Reason.KEY_TOO_LONG,
        )
    if "\x00" in key:
        raise Invalid("a key holds no NUL character", reason=Reason.BAD_KEY)


def filename_of(key: str) -> str:
    """The file name an object's file gets: the key's last segment that
    makes a name (a key ending in '/' is named by the segment before)."""
    for segment in reversed(re.split(r"[\\/]", key)):
        try:
            return clean_filename(segment)
        except Invalid:
            continue
    return "unnamed"


def file_type(given: str | None, filename: str) -> str:
    """The media type the file is recorded with: the one given if it is
    one (without parameters), else guessed from the name. The type as given
    is kept with the object whatever it is."""
    try:
        return clean_content_type(given, filename)
    except Invalid:
        return clean_content_type(None, filename)


# -- who may


def check_scopes(principal: Principal, use: str) -> None:
    if not all(principal.can(action) for action in NEEDS[use]):
        raise Forbidden(
            f"the credentials in use may not {use} here", reason=Reason.NOT_ALLOWED
        )


def check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid("not UTF-8 text", reason=Reason.BAD_ARGUMENT) from None
