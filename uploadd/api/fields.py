"""Structured field values (RFC 9651) as the upload protocols use them.

An Item that is a Boolean or an Integer (parameters allowed and ignored),
read with the parser both daemons share (:mod:`noded.structured`), and a
Dictionary of Integers to write. A value of another shape is None: the
drafts say such a field is ignored as a whole, not refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.web.http_headers import Headers

from noded.structured import BareItem, Malformed, parse_item


def raw(headers: Headers, name: str) -> str | None:
    """The field's value (lines joined as HTTP joins them), or None."""
    values = headers.getRawHeaders(name.encode("ascii"))
    if not values:
        return None
    return ", ".join(v.decode("latin-1") for v in values).strip(" \t")


def _bare(headers: Headers, name: str) -> BareItem | None:
    values = headers.getRawHeaders(name.encode("ascii"))
    if not values:
        return None
    try:
        return parse_item(values).value
    except Malformed:
        return None


def boolean(headers: Headers, name: str) -> bool | None:
    """``?1`` -> True, ``?0`` -> False; absent or any other value -> None."""
    value = _bare(headers, name)
    return value if isinstance(value, bool) else None


def integer(headers: Headers, name: str, *, minimum: int = 0) -> int | None:
    """An Integer item (at most 15 digits) not below ``minimum``; absent or
    any other value -> None."""
    value = _bare(headers, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        return None
    return value


def dictionary(members: Sequence[tuple[str, int]]) -> str:
    """A Dictionary of Integer members: ``a=1, b=2``."""
    return ", ".join(f"{key}={value}" for key, value in members)


def boolean_value(value: bool) -> str:
    return "?1" if value else "?0"
