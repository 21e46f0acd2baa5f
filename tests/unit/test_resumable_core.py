"""The resumable core without HTTP: the rules every protocol adapter shares
(offsets, lengths, deferred and stated-complete lengths, one writer per
upload, spans, expiry, completion)."""

from __future__ import annotations

import hashlib
from typing import Any

import attrs
import pytest

from uploadd import errors
from uploadd.auth.tokens import Principal
from uploadd.store.interface import UploadRecord
from uploadd.uploads import rules
from uploadd.uploads.rules import AppendAsk, SpanAsk
from uploadd.uploads.writers import Writers

ALICE = Principal(1, "alice", frozenset({"write"}))
BOB = Principal(2, "bob", frozenset({"write"}))
ADMIN = Principal(3, "root", frozenset({"admin"}))
LIMIT = 1000
DAY = 24 * 3600.0


def upload(**fields: Any) -> UploadRecord:
    """An open upload record of alice's, changed by ``fields``."""
    record = UploadRecord("u1", 1, "test", None, 0.0, DAY)
    return attrs.evolve(record, **fields)


# -- the rules, as pure functions ------------------------------------------------


def test_an_append_must_start_at_the_upload_offset_and_the_conflict_names_it() -> None:
    """An append from any offset but the upload's is a Conflict carrying the
    offset to resume from, in the words the client used."""
    record = upload(length=10, received=4)
    with pytest.raises(errors.Conflict) as stale:
        rules.admit_append(record, AppendAsk(3, named="Upload-Offset"), LIMIT)
    assert stale.value.offset == 4
    assert stale.value.detail.startswith("Upload-Offset 3 is not")
    terms = rules.admit_append(record, AppendAsk(4), LIMIT)
    assert (terms.length, terms.room) == (10, 6)


def test_a_deferred_length_is_stated_once_and_then_must_agree() -> None:
    """An upload without a length takes one stated with an append; after
    that the same length is accepted and another is Invalid."""
    open_ended = upload(received=3)
    assert rules.admit_append(open_ended, AppendAsk(3), LIMIT).length is None
    stated = rules.admit_append(open_ended, AppendAsk(3, length=6), LIMIT)
    assert (stated.length, stated.room) == (6, 3)
    known = upload(length=6, received=3)
    assert rules.admit_append(known, AppendAsk(3, length=6), LIMIT).length == 6
    with pytest.raises(errors.Invalid):
        rules.admit_append(known, AppendAsk(3, length=7), LIMIT)


def test_a_stated_length_covers_what_arrived_and_stays_within_the_limit() -> None:
    """A length below the bytes already here, or over the limit, is TooLarge
    naming the limit; so is a declared length over the limit at creation."""
    record = upload(received=5)
    for length in (4, LIMIT + 1):
        with pytest.raises(errors.TooLarge) as refused:
            rules.admit_append(record, AppendAsk(5, length=length), LIMIT)
        assert refused.value.limit == LIMIT
    with pytest.raises(errors.TooLarge):
        rules.check_length(LIMIT + 1, LIMIT)
    rules.check_length(LIMIT, LIMIT)
    rules.check_length(None, LIMIT)


def test_a_body_may_carry_only_the_room_the_length_leaves() -> None:
    """With a length the room is what it leaves; without one, what the limit
    leaves. A body known to be larger is TooLarge naming that room."""
    assert rules.admit_append(upload(received=2), AppendAsk(2), LIMIT).room == 998
    record = upload(length=10, received=4)
    assert rules.admit_append(record, AppendAsk(4, body_length=6), LIMIT).room == 6
    with pytest.raises(errors.TooLarge) as refused:
        rules.admit_append(record, AppendAsk(4, body_length=7), LIMIT)
    assert refused.value.limit == 6


def test_a_complete_flag_states_the_length_where_the_body_ends() -> None:
    """A last body of known size states the upload's length (offset + size),
    under the same rules as a stated length; of unknown size, the upload
    ends wherever the body does."""
    record = upload(received=4)
    known = rules.admit_append(
        record, AppendAsk(4, complete=True, body_length=3), LIMIT
    )
    assert (known.length, known.room, known.ends_upload) == (7, 3, False)
    unknown = rules.admit_append(record, AppendAsk(4, complete=True), LIMIT)
    assert (unknown.length, unknown.ends_upload) == (None, True)
    with pytest.raises(errors.Invalid):
        rules.admit_append(
            upload(length=10, received=4),
            AppendAsk(4, complete=True, body_length=3),
            LIMIT,
        )


def test_a_final_upload_takes_no_appends() -> None:
    """A concatenated upload is made of its parts: an append is Forbidden."""
    with pytest.raises(errors.Forbidden):
        rules.admit_append(upload(concat="final", length=5), AppendAsk(0), LIMIT)
    rules.check_appendable(upload(concat="partial"))


def test_a_span_states_the_upload_length_and_lies_inside_it() -> None:
    """A span whose total is not the upload's length, or that reaches past
    it or before 0, is Invalid in the client's words."""
    record = upload(length=10)
    rules.admit_span(record, SpanAsk(0, 10, 10))
    with pytest.raises(errors.Invalid) as other_total:
        rules.admit_span(record, SpanAsk(0, 5, 11, named="Content-Range"))
    assert other_total.value.detail.startswith("Content-Range total 11")
    for start, end in ((-1, 5), (5, 11)):
        with pytest.raises(errors.Invalid):
            rules.admit_span(record, SpanAsk(start, end, 10))


def test_a_span_on_a_complete_upload_is_a_conflict() -> None:
    """Bytes for an upload that has ended are a Conflict, without an offset."""
    with pytest.raises(errors.Conflict) as ended:
        rules.admit_span(upload(length=10, state="complete"), SpanAsk(0, 5, 10))
    assert ended.value.offset is None


def test_a_span_body_fills_its_span_exactly() -> None:
    """A body shorter or longer than the span it stated is Invalid; an
    open-ended span takes any size."""
    rules.check_span_filled(SpanAsk(3, 7, 10), 4)
    for size in (3, 5):
        with pytest.raises(errors.Invalid):
            rules.check_span_filled(SpanAsk(3, 7, 10, named="Content-Range"), size)
    rules.check_span_filled(SpanAsk(0, None, None), 12345)


def test_completion_lists_the_bytes_that_have_not_arrived() -> None:
    """An upload with gaps is not complete: Invalid listing the gaps."""
    with pytest.raises(errors.Invalid) as gaps:
        rules.check_covered(upload(length=30, ranges=((0, 10), (20, 30))))
    assert gaps.value.extra["missing"] == [[10, 20]]
    rules.check_covered(upload(length=30, ranges=((0, 30),)))
    assert rules.is_complete(upload(length=3, received=3))
    assert not rules.is_complete(upload(received=3))


def test_an_md5_given_at_completion_must_be_the_uploads() -> None:
    """A wrong md5 is Invalid naming both; the right one in any case, or
    none, passes."""
    actual = hashlib.md5(b"abc").hexdigest()
    with pytest.raises(errors.Invalid) as wrong:
        rules.check_md5("0" * 32, actual)
    assert wrong.value.extra == {"given": "0" * 32, "actual": actual}
    rules.check_md5(actual.upper(), actual)
    rules.check_md5(None, actual)


def test_an_open_upload_expires_once_idle_past_its_time() -> None:
    """Open past ``expires_at`` (or marked expired) is expired; a complete
    upload never is."""
    assert not rules.has_expired(upload(expires_at=10.0), 9.9)
    assert rules.has_expired(upload(expires_at=10.0), 10.0)
    assert rules.has_expired(upload(state="expired"), 0.0)
    assert not rules.has_expired(upload(state="complete", expires_at=10.0), 99.0)


def test_only_the_owner_or_an_admin_sees_an_upload() -> None:
    assert rules.visible_to(ALICE, 1)
    assert rules.visible_to(ADMIN, 1)
    assert not rules.visible_to(BOB, 1)


def test_only_complete_partial_uploads_join_a_final_one() -> None:
    """A part that is not partial is Invalid; one still open a Conflict."""
    rules.check_part(upload(concat="partial", state="complete"))
    with pytest.raises(errors.Invalid):
        rules.check_part(upload(state="complete"))
    with pytest.raises(errors.Conflict):
        rules.check_part(upload(concat="partial"))


def test_one_appender_per_upload_and_spans_that_do_not_overlap() -> None:
    """A second appender is Busy until the first releases; a span over one
    still arriving is a Conflict, a disjoint one is not."""
    writers = Writers()
    first = writers.claim("u1")
    with pytest.raises(errors.Busy):
        writers.claim("u1")
    writers.claim("u2").release()
    first.release()
    first.release()
    writers.claim("u1").release()
    release = writers.reserve("u3", 0, 100)
    with pytest.raises(errors.Conflict):
        writers.reserve("u3", 50, 150)
    writers.reserve("u3", 100, 200)()
    assert writers.busy("u3")
    release()
    assert not writers.busy("u3")
