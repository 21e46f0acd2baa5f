"""The core's own errors: what went wrong, in words a client can act on.

Everything below ``api/`` raises these and knows no HTTP status; the HTTP
edge maps each class to a status once (``uploadd/api/problems.py``). Each
carries a ``detail`` sentence naming the cause and, in ``extra``, the facts a
client needs to recover (an offset, a limit, a state); retryable ones carry
``retry_after`` seconds.
"""

from __future__ import annotations

from typing import Any


class UploaddError(Exception):
    """A failure the client caused or can wait out, never a bug."""

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Invalid(UploaddError):
    """The request is malformed or names something impossible."""


class InconsistentLength(Invalid):
    """Lengths a client stated disagree with each other or with the bytes."""


class Unsupported(UploaddError):
    """The body is of a kind this route does not take."""


class Unauthenticated(UploaddError):
    """No credentials, or credentials that prove nothing."""


class Forbidden(UploaddError):
    """The caller is known but may not do this."""


class NotFound(UploaddError):
    """No such thing, or not the caller's (the two look the same)."""


class Conflict(UploaddError):
    """The thing is in a state that does not allow this now; with ``offset``
    where the caller should resume from."""

    def __init__(self, detail: str, offset: int | None = None, **extra: Any) -> None:
        if offset is not None:
            extra["offset"] = offset
        super().__init__(detail, **extra)
        self.offset = offset


class Busy(UploaddError):
    """Another writer holds the thing; retry once it has finished."""


class Gone(UploaddError):
    """It existed, and is no more (an expired upload)."""


class TooLarge(UploaddError):
    """Over a size limit, which ``limit`` names."""

    def __init__(self, limit: int, what: str = "upload", **extra: Any) -> None:
        super().__init__(
            f"the {what} is larger than the limit of {limit} bytes",
            limit=limit,
            **extra,
        )
        self.limit = limit


class Unprocessable(UploaddError):
    """Well-formed, but refers to something that cannot be used."""


class ChecksumMismatch(UploaddError):
    """The bytes are not those the client vouched for; they were discarded.

    ``named`` is what the client called the check (a header name, such as
    ``Upload-Checksum`` or ``Repr-Digest``), ``algorithm`` the hash (in
    hashlib's name) and ``provided`` the digest it gave: the edge answers
    in the protocol that name belongs to. None of them is in ``extra``."""

    def __init__(
        self,
        detail: str,
        named: str = "checksum",
        algorithm: str = "",
        provided: bytes = b"",
        **extra: Any,
    ) -> None:
        super().__init__(detail, **extra)
        self.named = named
        self.algorithm = algorithm
        self.provided = provided


class Unavailable(UploaddError):
    """Not possible right now (nodes down, too many at once, stopping)."""

    def __init__(self, detail: str, retry_after: int = 5, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class StorageFull(Unavailable):
    """The disk (bytes or database) has no room."""

    def __init__(
        self,
        detail: str = "the server has no room to store this now; retry later",
        retry_after: int = 60,
    ) -> None:
        super().__init__(detail, retry_after)


class Elsewhere(Unavailable):
    """The upload's bytes are on another uploadd instance (``holder``): the
    request goes on there, or, where nothing can take it there, waits."""

    def __init__(self, holder: str) -> None:
        super().__init__(
            f"this upload's bytes are on instance {holder!r}", 5, holder=holder
        )
        self.holder = holder
