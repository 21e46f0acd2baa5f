"""Malformed HTTP in memory: every request of tests/malformed.py gets its 4xx
(or redirect) as problem+json from both daemons at once, never a 500 or a
silence; refusals close the connection after a short linger."""

from __future__ import annotations

import pytest

from uploadd.api.download import Unsatisfiable, parse_range


def test_byte_ranges_of_any_length_are_read_without_converting_them() -> None:
    """Positions of thousands of digits are past the end (416), clamp to the
    end, or ask for the whole file, as the same numbers with fewer digits."""
    huge = "9" * 5000
    with pytest.raises(Unsatisfiable):
        parse_range(f"bytes={huge}-", 10)
    assert parse_range(f"bytes=2-{huge}", 10) == (2, 9)
    assert parse_range(f"bytes=-{huge}", 10) == (0, 9)
    assert parse_range(f"bytes=0000{'0' * 5000}3-4", 10) == (3, 4)
