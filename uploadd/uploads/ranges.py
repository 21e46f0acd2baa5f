"""Byte spans as half-open ``(start, end)`` pairs, and Content-Range headers."""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from uploadd.api.problems import bad_request

# Positions of at most 19 digits: past any file, and int() of thousands of
# digits would raise.
_CONTENT_RANGE = re.compile(
    r"^\s*bytes\s+([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19})\s*$"
)


def merge(spans: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted, non-overlapping, non-touching spans covering the same bytes."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def covered_prefix(spans: Iterable[tuple[int, int]]) -> int:
    """How many bytes from 0 are covered without a gap."""
    merged = merge(spans)
    return merged[0][1] if merged and merged[0][0] == 0 else 0


def missing(spans: Iterable[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    """The gaps in ``[0, length)``."""
    gaps, at = [], 0
    for start, end in merge(spans):
        if start > at:
            gaps.append((at, min(start, length)))
        at = max(at, end)
    if at < length:
        gaps.append((at, length))
    return [gap for gap in gaps if gap[0] < gap[1]]


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@attrs.frozen
class ContentRange:
    """A parsed ``Content-Range: bytes first-last/total`` of an upload chunk."""

    first: int
    last: int
    total: int

    def span(self, base: int) -> tuple[int, int]:
        """The chunk as ``[start, end)`` for a client numbering bytes from ``base``."""
        return self.first - base, self.last - base + 1

    def guess_base(self) -> int:
        """1 for clients that count bytes from 1 (``bytes 1-N/N``), else 0."""
        return 1 if self.first >= 1 and self.last == self.total else 0


def parse_content_range(header: bytes | None) -> ContentRange:
    if header is None:
        raise bad_request(
            "a chunk needs a Content-Range: bytes FIRST-LAST/TOTAL header"
        )
    match = _CONTENT_RANGE.match(header.decode("latin-1"))
    if not match:
        raise bad_request(
            "Content-Range must be bytes FIRST-LAST/TOTAL",
            content_range=header.decode("latin-1"),
        )
    first, last, total = (int(group) for group in match.groups())
    if last < first or last > total:
        raise bad_request(
            "Content-Range is not a span of the total",
            content_range=header.decode("latin-1"),
        )
    return ContentRange(first, last, total)
