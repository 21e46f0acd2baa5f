"""Structured field values (RFC 8941) as the upload protocols use them.

Only the shapes those headers have: an Item that is a Boolean or an
Integer (parameters allowed and ignored), and a Dictionary of Integers to
write. A value of another shape is None: the drafts say such a field is
ignored as a whole, not refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from twisted.web.http_headers import Headers

# A parameter's value: a token, a quoted string, a number, a boolean or a
# byte sequence (RFC 8941 3.1.2); never a comma, which would end the member.
_BARE = (
    r"(?:[A-Za-z*][A-Za-z0-9:/!#$%&'*+.^_`|~-]*"
    r'|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*"'
    r"|-?[0-9]{1,15}(?:\.[0-9]{1,3})?|\?[01]|:[A-Za-z0-9+/=]*:)"
)
_PARAMS = r"(?:;[ ]*[a-z*][a-z0-9_.*-]*(?:=" + _BARE + r")?)*"
_BOOLEAN = re.compile(r"^\?([01])" + _PARAMS + r"$")
_INTEGER = re.compile(r"^(-?[0-9]{1,15})" + _PARAMS + r"$")


def raw(headers: Headers, name: str) -> str | None:
    """The field's value (lines joined as HTTP joins them, so an Item sent
    on two lines is a list, which no Item parser takes), or None."""
    values = headers.getRawHeaders(name.encode("ascii"))
    if not values:
        return None
    return ", ".join(v.decode("latin-1") for v in values).strip(" \t")


def boolean(headers: Headers, name: str) -> bool | None:
    """``?1`` -> True, ``?0`` -> False; absent or malformed -> None."""
    text = raw(headers, name)
    match = _BOOLEAN.match(text) if text is not None else None
    return None if match is None else match.group(1) == "1"


def integer(headers: Headers, name: str, *, minimum: int = 0) -> int | None:
    """A non-negative Integer item; absent, malformed or below ``minimum``
    -> None."""
    text = raw(headers, name)
    match = _INTEGER.match(text) if text is not None else None
    if match is None:
        return None
    value = int(match.group(1))
    return value if value >= minimum else None


def dictionary(members: Sequence[tuple[str, int]]) -> str:
    """A Dictionary of Integer members: ``a=1, b=2``."""
    return ", ".join(f"{key}={value}" for key, value in members)


def boolean_value(value: bool) -> str:
    return "?1" if value else "?0"
