"""``Upload-Metadata``: the tus way of naming an upload's file, type and
more (``key base64value,...``), which tus-js-client sends in every protocol
it speaks, the IETF draft's included.
"""

from __future__ import annotations

import base64
import binascii
import re

from uploadd.api.problems import bad_request

_METADATA_PAIR = re.compile(r"^([^\x00-\x20\x7f,]+)(?: ([A-Za-z0-9+/=]*))?$")


def parse_metadata(text: str | None) -> dict[str, str]:
    """Upload-Metadata: ``key base64,key2 base64,key3`` -> {key: value}.

    Every pair has a key (no spaces, commas or control characters, unique)
    and optionally one space and a value in canonical base64; spaces around
    the commas are allowed, an empty pair is not.
    """
    found: dict[str, str] = {}
    if not text:
        return found
    for pair in text.split(","):
        match = _METADATA_PAIR.match(pair.strip(" \t"))
        if match is None:
            raise bad_request(
                "Upload-Metadata is not 'key base64value,...' (keys non-empty, "
                "one space before each value)"
            )
        key, encoded = match.group(1), match.group(2) or ""
        if key in found:
            raise bad_request(f"Upload-Metadata names {key!r} twice")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raw = None
        if raw is None or base64.b64encode(raw).decode("ascii") != encoded:
            raise bad_request(f"Upload-Metadata value of {key!r} is not base64")
        found[key] = raw.decode("utf-8", "surrogateescape")
    return found


def encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode('utf-8', 'surrogateescape')).decode()}"
        if value
        else key
        for key, value in metadata.items()
    )
