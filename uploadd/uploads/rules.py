"""The rules of a resumable upload, whatever protocol carries it.

Pure functions of an upload's record and of what a client asks, raising the
core's errors (``uploadd/errors.py``): who may see an upload, when it has
expired, which length it may have, where an append may start and how much it
may carry, whether a span fits, when every byte has arrived. No I/O and no
HTTP: a protocol adapter turns its headers into an :class:`AppendAsk` or a
:class:`SpanAsk`, and the HTTP edge turns the errors into answers.

``named`` in an ask is what the client called the position it sent (a
header name such as ``Upload-Offset``), so that a refusal names what was
wrong in the client's own words.
"""

from __future__ import annotations

import attrs

from uploadd.auth.tokens import Principal
from uploadd.errors import Conflict, Forbidden, InconsistentLength, Invalid, TooLarge
from uploadd.store.interface import UploadRecord
from uploadd.uploads.ranges import missing

#: States of an upload's record; ``cancelled``: the instance holding its
#: bytes was retired.
OPEN, COMPLETE, EXPIRED, CANCELLED = "open", "complete", "expired", "cancelled"
#: Kinds of concatenation (tus): a part of a final upload, and the final one.
PARTIAL, FINAL = "partial", "final"


# -- who and when ----------------------------------------------------------------


def visible_to(principal: Principal, owner_id: int) -> bool:
    """Whether ``principal`` may see an upload of ``owner_id``: its owner and
    admins. Anyone else is told it does not exist."""
    return principal.is_admin or principal.user_id == owner_id


def has_expired(record: UploadRecord, now: float) -> bool:
    """An expired upload, or an open one left idle past its time."""
    return record.state == EXPIRED or (
        record.state == OPEN
        and record.expires_at is not None
        and record.expires_at <= now
    )


def keeps_bytes(record: UploadRecord) -> bool:
    """Whether the upload's bytes are still on its holder's disk: while it
    is open, and a complete partial upload until a final one joins it (and
    names the file it became part of)."""
    return record.state == OPEN or (
        record.state == COMPLETE and record.concat == PARTIAL and not record.file_id
    )


# -- metadata --------------------------------------------------------------------

#: Metadata keys starting so are the server's own (a digest kept for the
#: end, say): a client may not set them, and nobody is shown them.
RESERVED = "_"
#: The server's metadata key naming the upload a partial upload is a part
#: of, when it was made for one (an S3 multipart upload's part): only that
#: upload joins it, and it is not listed on its own.
PART_OF = "_part_of"


def check_metadata(metadata: dict[str, str]) -> None:
    """A client's metadata names none of the server's own keys."""
    reserved = sorted(key for key in metadata if key.startswith(RESERVED))
    if reserved:
        raise Invalid(
            f"metadata keys starting with {RESERVED!r} are the server's own: "
            + ", ".join(reserved[:10])
        )


def shown(metadata: dict[str, str]) -> dict[str, str]:
    """An upload's metadata as a client may see it: without the server's keys."""
    return {k: v for k, v in metadata.items() if not k.startswith(RESERVED)}


# -- lengths ---------------------------------------------------------------------


def check_length(length: int | None, limit: int) -> None:
    """A length an upload declares is at most ``limit`` (None: not yet known)."""
    if length is not None and length > limit:
        raise TooLarge(limit)


def is_complete(record: UploadRecord) -> bool:
    """Every byte of a known length has arrived in order."""
    return record.length is not None and record.received == record.length


def check_covered(record: UploadRecord) -> None:
    """Every byte of the upload has arrived (spans may have come in any
    order); else Invalid listing the gaps."""
    gaps = missing(record.ranges, record.length or 0)
    if gaps:
        listed = ", ".join(f"{a}-{b - 1}" for a, b in gaps[:10])
        raise Invalid(
            f"bytes {listed} have not arrived",
            missing=[list(gap) for gap in gaps[:100]],
        )


#: Protocols whose uploads compute their file's md5 whatever ``[storage]
#: digests`` says: a Content-Range upload's completion may name the md5 the
#: file must have, and S3's entity tags are md5s.
MD5_PROTOCOLS = frozenset({"range", "s3"})


def check_md5(given: str | None, actual: str) -> None:
    """The whole upload's md5 is the one the client gave, if it gave one."""
    if given and given.lower() != actual:
        raise Invalid(
            f"md5 {given.lower()} given, but the upload's md5 is {actual}; "
            "the upload is kept for another try",
            given=given.lower(),
            actual=actual,
        )


# -- appends ---------------------------------------------------------------------


@attrs.frozen
class AppendAsk:
    """An append as the client states it: its body starts at ``offset``;
    ``length`` states the upload's length now (one deferred until now);
    ``complete`` says this body is the upload's last; ``body_length`` is the
    body's size when known before it arrives."""

    offset: int
    length: int | None = None
    complete: bool = False
    body_length: int | None = None
    named: str = "offset"
    #: The upload is complete only once a request says so (``complete``),
    #: even when its bytes reach its length (the IETF draft); otherwise
    #: reaching the length completes it (tus).
    explicit: bool = False


@attrs.frozen
class AppendTerms:
    """What an admitted append may do: the upload's ``length`` from now on
    (None: still open-ended), the most bytes the body may carry (``room``),
    and whether the upload ends where this body ends (``ends_upload``: it
    said it was the last, before its size was known)."""

    length: int | None
    room: int
    ends_upload: bool = False
    #: As :attr:`AppendAsk.explicit`; ``completes``: this body says so.
    explicit: bool = False
    completes: bool = False


def finishes(record: UploadRecord, terms: AppendTerms) -> bool:
    """Whether the upload is complete once this body has landed: every
    byte is here and, where completion is said, this body said it."""
    return is_complete(record) and (terms.completes or not terms.explicit)


def check_said_length(record: UploadRecord, terms: AppendTerms) -> None:
    """A body that said it completes the upload ends at its length."""
    if terms.explicit and terms.completes and not is_complete(record):
        raise InconsistentLength(
            f"the request said it completes the upload, but the upload has "
            f"{record.received} of its {record.length} bytes",
            length=record.length,
            offset=record.received,
        )


def check_appendable(record: UploadRecord) -> None:
    """A final (concatenated) upload is made of its parts and takes no bytes."""
    if record.concat == FINAL:
        raise Forbidden("a final (concatenated) upload takes no appends")


def admit_append(record: UploadRecord, ask: AppendAsk, limit: int) -> AppendTerms:
    """The terms of an append to ``record``, or the error refusing it.

    It starts exactly at the upload's offset (else Conflict carrying that
    offset); a length stated now must agree with one stated before, cover
    the bytes already here and stay within ``limit``; a body whose size is
    known must fit what the length leaves. ``complete`` with a known body
    size states the length (offset + size).
    """
    check_appendable(record)
    if ask.offset != record.received:
        raise Conflict(
            f"{ask.named} {ask.offset} is not the upload's offset "
            f"{record.received}; resume from {record.received}",
            offset=record.received,
        )
    stated = ask.length
    if ask.complete and ask.body_length is not None and stated is None:
        stated = ask.offset + ask.body_length
    length = record.length
    if stated is not None:
        if length is not None and stated != length:
            raise Invalid(f"the upload's length is already set ({length} bytes)")
        if stated < record.received or stated > limit:
            raise TooLarge(limit)
        length = stated
    room = (length if length is not None else limit) - record.received
    if ask.body_length is not None and ask.body_length > room:
        raise TooLarge(room, f"body of {ask.body_length} bytes")
    return AppendTerms(
        length,
        room,
        ask.complete and length is None,
        explicit=ask.explicit,
        completes=ask.complete,
    )


# -- spans -----------------------------------------------------------------------


@attrs.frozen
class SpanAsk:
    """A span as the client states it: its body is the bytes ``[start,
    end)`` of an upload of ``total`` bytes. ``end`` None: the body is the
    whole upload, whose length is its size (then ``total`` is None too)."""

    start: int
    end: int | None
    total: int | None
    named: str = "range"


def check_span(ask: SpanAsk) -> None:
    """The span lies inside the total it states."""
    if ask.start < 0 or (
        ask.total is not None and ask.end is not None and ask.end > ask.total
    ):
        raise Invalid(f"{ask.named} lies outside the file")


def admit_span(record: UploadRecord, ask: SpanAsk) -> None:
    """A span may land on ``record``: it is open and takes bytes (not a
    final upload), the span states the upload's length and lies inside it."""
    if record.state != OPEN:
        raise Conflict(f"upload {record.id} is already complete")
    check_appendable(record)
    if ask.total != record.length:
        raise Invalid(
            f"{ask.named} total {ask.total} is not the upload's length {record.length}"
        )
    check_span(ask)


def check_span_filled(ask: SpanAsk, size: int) -> None:
    """A body with a stated end fills its span exactly."""
    if ask.end is not None and size != ask.end - ask.start:
        raise Invalid(
            f"the chunk has {size} bytes but its {ask.named} says {ask.end - ask.start}"
        )


# -- concatenation ---------------------------------------------------------------


def check_part(record: UploadRecord, of: str | None = None) -> None:
    """Only complete partial uploads join a final one: one made as a part
    of an upload (:data:`PART_OF`) only that upload, ``of``."""
    if record.concat != PARTIAL:
        raise Invalid(f"upload {record.id} is not a partial upload")
    if record.metadata.get(PART_OF) != of:
        raise Invalid(f"upload {record.id} is a part of another upload")
    if record.state != COMPLETE:
        raise Conflict(f"partial upload {record.id} is not complete yet")
