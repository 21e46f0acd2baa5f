"""Byte spans as half-open ``(start, end)`` pairs: merging, gaps, overlaps."""

from __future__ import annotations

from collections.abc import Iterable


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
