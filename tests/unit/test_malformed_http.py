"""Malformed HTTP in memory: every request of tests/malformed.py gets its 4xx
(or redirect) as problem+json from both daemons at once, never a 500 or a
silence; refusals close the connection after a short linger."""

from __future__ import annotations

import pytest

from uploadd.api.download import Unsatisfiable, parse_range
from uploadd.api.problems import Problem
from uploadd.api.tus import parse_metadata


def test_byte_ranges_of_any_length_are_read_without_converting_them() -> None:
    """Positions of thousands of digits are past the end (416), clamp to the
    end, or ask for the whole file, as the same numbers with fewer digits."""
    huge = "9" * 5000
    with pytest.raises(Unsatisfiable):
        parse_range(f"bytes={huge}-", 10)
    assert parse_range(f"bytes=2-{huge}", 10) == (2, 9)
    assert parse_range(f"bytes=-{huge}", 10) == (0, 9)
    assert parse_range(f"bytes=0000{'0' * 5000}3-4", 10) == (3, 4)


@pytest.mark.parametrize(
    "header",
    [
        "filename Zm9v=",  # excess padding
        "filename Zh==",  # bits beyond the last byte
        "filename  Zm9v",  # two spaces
        "filename Zm9v,,type YQ==",  # an empty pair
        ",filename Zm9v",
        "filename Zm9v,",
        "filename Zm9v,filename YQ==",
        "file\x01name Zm9v",
    ],
)
def test_upload_metadata_that_is_not_key_base64_pairs_is_refused(header: str) -> None:
    """tus Upload-Metadata: every pair has a non-empty unique key and at most
    one canonical base64 value; anything else is a 400."""
    with pytest.raises(Problem) as refused:
        parse_metadata(header)
    assert refused.value.status == 400


def test_upload_metadata_pairs_are_read() -> None:
    """Keys with and without values, spaces around the commas."""
    assert parse_metadata("filename Zm9v , confidential,type YQ==") == {
        "filename": "foo",
        "confidential": "",
        "type": "a",
    }
