"""The IETF draft's pieces in memory: structured fields, versions, file
names, limits, problem documents, and a newer writer taking over."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.web.http_headers import Headers

from uploadd import errors
from uploadd.api import fields
from uploadd.api.rufh import (
    LATEST,
    PROBLEMS,
    VERSIONS,
    completeness,
    disposition_name,
    interop_of,
    speaks,
)
from uploadd.api.rufh.documents import Documents
from uploadd.uploads.writers import Writer, Writers


def headers(**values: str) -> Headers:
    return Headers(
        {k.replace("_", "-").encode(): [v.encode()] for k, v in values.items()}
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("?1", True),
        ("?0", False),
        ("?1;a=b", True),
        (" ?0 ", False),
        ("?2", None),
        ("1", None),
        ("true", None),
        ("", None),
    ],
)
def test_a_boolean_field_is_read_or_ignored(text: str, value: bool | None) -> None:
    """``?1``/``?0`` (parameters ignored); any other value is as if absent."""
    assert fields.boolean(headers(Upload_Complete=text), "Upload-Complete") is value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("7;x", 7),
        ("-1", None),
        ("0x10", None),
        ("1.5", None),
        ("1234567890123456", None),
        ("", None),
    ],
)
def test_an_integer_field_is_read_or_ignored(text: str, value: int | None) -> None:
    """A non-negative Integer of at most 15 digits; anything else ignored."""
    assert fields.integer(headers(Upload_Offset=text), "Upload-Offset") == value


def test_the_version_is_negotiated_per_request() -> None:
    """No version field is the latest draft; 3 to 8 are spoken; others not."""
    assert interop_of(Headers()) is LATEST
    assert sorted(VERSIONS) == [3, 4, 5, 6, 7, 8]
    for version in VERSIONS:
        found = interop_of(headers(Upload_Draft_Interop_Version=str(version)))
        assert found is not None and found.version == version
    assert interop_of(headers(Upload_Draft_Interop_Version="2")) is None
    assert interop_of(headers(Upload_Draft_Interop_Version="nine")) is None


def test_version_3_says_upload_incomplete_and_later_ones_upload_complete() -> None:
    """Interop 3 (draft-01) names completeness the other way round."""
    v3, v8 = VERSIONS[3], VERSIONS[8]
    assert completeness(headers(Upload_Incomplete="?1"), v3) is False
    assert completeness(headers(Upload_Incomplete="?0"), v3) is True
    assert completeness(headers(Upload_Complete="?1"), v3) is True
    assert completeness(headers(Upload_Incomplete="?1"), v8) is None


def test_tus_requests_are_not_the_draft_s() -> None:
    """Tus-Resumable makes a request tus's whatever else it carries."""
    assert speaks(headers(Upload_Complete="?1"))
    assert speaks(headers(Upload_Draft_Interop_Version="6"))
    assert not speaks(headers(Upload_Complete="?1", Tus_Resumable="1.0.0"))
    assert not speaks(headers(Upload_Length="5"))


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ('inline; filename="file name.jpg"', "file name.jpg"),
        (
            "inline; filename*=UTF-8''file%20name%C3%A9.jpg; filename=x",
            "file nameé.jpg",
        ),
        ('attachment; filename="a \\"quoted\\" name"', 'a "quoted" name'),
        ("inline; filename=plain.txt", "plain.txt"),
        ("inline", None),
        (None, None),
    ],
)
def test_the_file_name_comes_from_content_disposition(
    value: str | None, name: str | None
) -> None:
    """``filename*`` (RFC 8187) wins over ``filename``; quotes unescaped."""
    assert disposition_name(value) == name


def test_a_mismatching_offset_is_the_draft_s_problem_type() -> None:
    """409 with expected-offset and provided-offset, Upload-Offset and
    Upload-Complete: ?0 in its headers."""
    documents = Documents(1 << 30, 3600.0, Clock())
    problem = documents.problem(
        errors.Conflict("elsewhere", offset=12), VERSIONS[3], provided=40
    )
    assert problem.status == 409
    assert problem.type == PROBLEMS + "mismatching-upload-offset"
    assert problem.document()["expected-offset"] == 12
    assert problem.document()["provided-offset"] == 40
    assert "offset" not in problem.document()
    assert problem.headers["Upload-Offset"] == "12"
    assert problem.headers["Upload-Incomplete"] == "?1"


def test_a_newer_writer_ends_the_older_and_waits_for_its_release() -> None:
    """take_over stops the writer streaming (once it can be stopped) and
    claims the upload when that one is released; claim stays Busy."""
    writers = Writers()
    older = writers.claim("u")
    with pytest.raises(errors.Busy):
        writers.claim("u")
    taking = Deferred.fromCoroutine(writers.take_over("u"))
    assert not taking.called
    stops: list[str] = []
    older.stoppable(lambda: stops.append("stopped"))
    assert stops == ["stopped"]  # asked before it could stop: stopped on arrival
    assert not taking.called
    older.release()
    newer = taking.result
    assert isinstance(newer, Writer) and newer is not older
    with pytest.raises(errors.Busy):
        writers.claim("u")
    # A third request ends the second in turn.
    third = Deferred.fromCoroutine(writers.take_over("u"))
    newer.stoppable(newer.release)
    assert isinstance(third.result, Writer) and third.result is not newer
    third.result.release()
    writers.claim("u").release()


def test_an_item_sent_on_two_lines_is_a_list_and_ignored() -> None:
    """Two field lines make a list, not an Item; a quoted parameter with a
    ';' in it is still one parameter."""
    twice = Headers({b"upload-offset": [b"5;a=1", b"9"]})
    assert fields.integer(twice, "Upload-Offset") is None
    both = Headers({b"upload-complete": [b"?1;a=1", b"?0"]})
    assert fields.boolean(both, "Upload-Complete") is None
    quoted = Headers({b"upload-complete": [b'?1;a="x;y"']})
    assert fields.boolean(quoted, "Upload-Complete") is True


def test_the_limits_are_written_as_each_version_names_them() -> None:
    """Upload-Limit from version 6, its lifetime as ``expires`` there and
    ``max-age`` after; append limits only when configured; none before 6."""
    documents = Documents(1000, 3600.0, Clock(), max_append_size=100)
    assert documents.limits(VERSIONS[5]) is None
    assert documents.limits(VERSIONS[6]) == (
        "min-size=0, max-size=1000, max-append-size=100, expires=3600"
    )
    assert documents.limits(VERSIONS[8]) == (
        "min-size=0, max-size=1000, max-append-size=100, max-age=3600"
    )
