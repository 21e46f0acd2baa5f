"""The resumable core without HTTP: the rules every protocol adapter shares
(offsets, lengths, deferred and stated-complete lengths, one writer per
upload, spans, expiry, completion), on a memory store and a Clock."""

from __future__ import annotations

import hashlib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from noded.threads import run_inline
from uploadd import errors
from uploadd.auth.tokens import Principal
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.library import Library
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import UploadRecord
from uploadd.store.memory import MemoryStore
from uploadd.uploads import rules, spans
from uploadd.uploads.appends import (
    Append,
    BodyCheck,
    ReprCheck,
    appendable,
    begin_append,
)
from uploadd.uploads.checks import KEPT
from uploadd.uploads.resumable import Resumable
from uploadd.uploads.rules import AppendAsk, SpanAsk
from uploadd.uploads.writers import Writers

T = TypeVar("T")
ALICE = Principal(1, "alice", frozenset({"write"}))
BOB = Principal(2, "bob", frozenset({"write"}))
ADMIN = Principal(3, "root", frozenset({"admin"}))
LIMIT = 1000
DAY = 24 * 3600.0


def now(coroutine: Coroutine[Any, Any, T]) -> T:
    """The outcome of a coroutine that completes without waiting (a memory
    store, inline threads): its result, or its error raised here."""
    outcome: list[Any] = []
    Deferred.fromCoroutine(coroutine).addBoth(outcome.append)
    assert outcome, "the coroutine waited on something"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    result: T = outcome[0]
    return result


def upload(**fields: Any) -> UploadRecord:
    """An open upload record of alice's, changed by ``fields``."""
    record = UploadRecord("u1", 1, "test", None, 0.0, DAY)
    return attrs.evolve(record, **fields)


@attrs.define
class Core:
    uploads: Resumable
    store: MemoryStore
    blobs: BlobStore
    clock: Clock

    def create(
        self, length: int | None, metadata: dict[str, str] | None = None
    ) -> UploadRecord:
        return now(self.uploads.create(ALICE, "test", length, metadata or {}))

    def record(self, upload_id: str) -> UploadRecord:
        return self.store.uploads[upload_id]

    def bytes_of(self, upload_id: str) -> bytes:
        return self.blobs.upload_path(upload_id).read_bytes()


@pytest.fixture
def core(tmp_path: Path) -> Core:
    store, clock = MemoryStore(), Clock()
    blobs = BlobStore(tmp_path)
    blobs.prepare()
    library = Library(store, blobs, run_inline, clock)
    return Core(
        Resumable(store, blobs, library, run_inline, clock, DAY), store, blobs, clock
    )


def written(target: BlobFile, data: bytes) -> Digest:
    """Write ``data`` as one body into ``target`` the way the writer threads
    do, and close it durably."""
    target.write_sha256([data])
    target.update_beside([data])
    return target.close()


def append(
    core: Core,
    upload_id: str,
    offset: int,
    data: bytes,
    whole: ReprCheck | None = None,
    **ask: Any,
) -> Any:
    """Admit, write and land one append of ``data`` at ``offset`` (vouched
    for by ``whole`` when given)."""
    record = now(appendable(core.uploads, ALICE, upload_id))
    admitted = begin_append(
        core.uploads, record, AppendAsk(offset, **ask), LIMIT, whole=whole
    )
    return now(admitted.land(ALICE, written(admitted.target, data)))


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


# -- the core on a memory store ------------------------------------------------


def test_appends_advance_the_offset_and_the_last_makes_the_file(core: Core) -> None:
    """Two appends fill an upload; the first leaves it open at its offset,
    the second finishes it into a file with the hashes of the whole."""
    record = core.create(6, metadata={"filename": "six.txt"})
    opened, stored = append(core, record.id, 0, b"abc")
    assert (opened.received, opened.state, stored) == (3, "open", None)
    done, stored = append(core, record.id, 3, b"def")
    assert done.state == "complete" and stored is not None
    assert stored.sha256 == hashlib.sha256(b"abcdef").hexdigest()
    assert core.store.files[record.id].filename == "six.txt"


def test_a_stale_append_and_a_second_writer_change_nothing(core: Core) -> None:
    """While an append streams, another is Busy and so is deleting the
    upload; an append at a stale offset is a Conflict. The first lands."""
    record = core.create(6)
    first = begin_append(core.uploads, record, AppendAsk(0), LIMIT)
    with pytest.raises(errors.Busy):
        begin_append(core.uploads, record, AppendAsk(0), LIMIT)
    with pytest.raises(errors.Busy):
        now(core.uploads.delete(ALICE, record.id))
    landed, _ = now(first.land(ALICE, written(first.target, b"abc")))
    assert landed.received == 3
    with pytest.raises(errors.Conflict) as stale:
        begin_append(core.uploads, landed, AppendAsk(0), LIMIT)
    assert stale.value.offset == 3
    assert core.record(record.id).received == 3


def test_an_interrupted_append_keeps_its_durable_bytes(core: Core) -> None:
    """A body that breaks off keeps what reached disk, and the next append
    continues from there."""
    record = core.create(6)
    broken = begin_append(core.uploads, record, AppendAsk(0), LIMIT)
    broken.target.write_sha256([b"ab"])
    kept = broken.target.discard()
    now(broken.aborted(kept))
    assert core.record(record.id).received == 2
    done, stored = append(core, record.id, 2, b"cdef")
    assert done.state == "complete" and stored is not None
    assert stored.sha256 == hashlib.sha256(b"abcdef").hexdigest()


def test_a_checksum_mismatch_discards_the_body_and_keeps_the_offset(
    core: Core,
) -> None:
    """A body that is not what its checksum vouched for is ChecksumMismatch;
    its bytes are cut off and the offset stays. An interrupted body under a
    checksum keeps nothing."""
    record = core.create(6)
    append(core, record.id, 0, b"abc")
    vouched = BodyCheck(hashlib.sha1(), hashlib.sha1(b"xyz").digest())
    current = core.record(record.id)
    wrong = begin_append(core.uploads, current, AppendAsk(3), LIMIT, vouched)
    with pytest.raises(errors.ChecksumMismatch):
        now(wrong.land(ALICE, written(wrong.target, b"def")))
    assert core.record(record.id).received == 3
    assert core.bytes_of(record.id) == b"abc"
    vouched = BodyCheck(hashlib.sha1(), hashlib.sha1(b"def").digest())
    broken = begin_append(core.uploads, current, AppendAsk(3), LIMIT, vouched)
    assert not broken.checkpoints
    broken.target.write_sha256([b"de"])
    now(broken.aborted(broken.target.discard()))
    assert core.record(record.id).received == 3
    assert core.bytes_of(record.id) == b"abc"


def test_an_upload_created_with_its_body_goes_when_the_body_fails(
    core: Core,
) -> None:
    """Nobody knows an upload made by the request whose body failed: it is
    removed, records and bytes, whether the body broke off or was refused."""
    for fail in ("abort", "checksum"):
        record = core.create(3)
        vouched = BodyCheck(hashlib.sha1(), b"not it")
        made: Append = begin_append(
            core.uploads, record, AppendAsk(0), LIMIT, vouched, created=True
        )
        if fail == "abort":
            now(made.aborted(made.target.discard()))
        else:
            with pytest.raises(errors.ChecksumMismatch):
                now(made.land(ALICE, written(made.target, b"abc")))
        assert record.id not in core.store.uploads
        assert not core.blobs.upload_path(record.id).exists()


def sha256_of(data: bytes) -> ReprCheck:
    return ReprCheck("sha256", hashlib.sha256(data).digest())


def test_a_whole_file_digest_stated_early_is_kept_and_checked_at_the_end(
    core: Core,
) -> None:
    """A whole-file digest sent with a body that does not complete the
    upload is kept on its record (under a key of the server's own); the
    append that completes the upload is checked against it and makes the
    file when it matches."""
    record = core.create(6, metadata={"filename": "six.txt"})
    opened, stored = append(core, record.id, 0, b"abc", whole=sha256_of(b"abcdef"))
    assert (opened.received, stored) == (3, None)
    assert ReprCheck.kept_in(core.record(record.id).metadata) == sha256_of(b"abcdef")
    assert rules.shown(core.record(record.id).metadata) == {"filename": "six.txt"}
    done, stored = append(core, record.id, 3, b"def")
    assert done.state == "complete" and stored is not None
    assert stored.sha256 == hashlib.sha256(b"abcdef").hexdigest()


def test_a_file_that_is_not_the_one_vouched_for_loses_the_last_body_only(
    core: Core,
) -> None:
    """When the completing append makes a file other than the kept digest
    says, ChecksumMismatch names the check, the digest given and its
    algorithm; that body's bytes are cut off, the offset stays, and the
    running hashes are those before it. A later request stating another
    digest replaces the kept one."""
    record = core.create(6)
    append(core, record.id, 0, b"abc", whole=sha256_of(b"abcdef"))
    with pytest.raises(errors.ChecksumMismatch) as wrong:
        append(core, record.id, 3, b"xyz")
    assert (wrong.value.named, wrong.value.algorithm) == ("Repr-Digest", "sha256")
    assert wrong.value.provided == hashlib.sha256(b"abcdef").digest()
    assert core.record(record.id).received == 3
    assert core.record(record.id).state == "open"
    assert core.bytes_of(record.id) == b"abc"
    assert core.uploads.running(record.id, 3) is not None
    assert record.id not in core.store.files
    done, stored = append(core, record.id, 3, b"xyz", whole=sha256_of(b"abcxyz"))
    assert done.state == "complete" and stored is not None
    assert stored.sha256 == hashlib.sha256(b"abcxyz").hexdigest()


def test_an_interrupted_body_keeps_its_whole_file_digest_for_the_end(
    core: Core,
) -> None:
    """A body that breaks off keeps its durable bytes and the whole-file
    digest it was sent with; the append that completes the upload is
    checked against it."""
    record = core.create(6)
    broken = begin_append(
        core.uploads, record, AppendAsk(0), LIMIT, whole=sha256_of(b"abcdef")
    )
    broken.target.write_sha256([b"ab"])
    now(broken.aborted(broken.target.discard()))
    assert core.record(record.id).received == 2
    assert ReprCheck.kept_in(core.record(record.id).metadata) == sha256_of(b"abcdef")
    with pytest.raises(errors.ChecksumMismatch):
        append(core, record.id, 2, b"cdeX")
    done, stored = append(core, record.id, 2, b"cdef")
    assert done.state == "complete" and stored is not None


def test_a_sha512_is_checked_by_reading_the_file(core: Core) -> None:
    """A sha512 vouching for the whole file is checked against the file
    read once at the end: a matching one makes the file; a wrong one in
    the request that made the upload removes the upload, as any failure of
    that request does."""
    record = core.create(3)
    good = ReprCheck("sha512", hashlib.sha512(b"abc").digest())
    done, stored = append(core, record.id, 0, b"abc", whole=good)
    assert done.state == "complete" and stored is not None and stored.size == 3
    made = core.create(3)
    bad = ReprCheck("sha512", hashlib.sha512(b"abd").digest())
    admitted = begin_append(
        core.uploads, made, AppendAsk(0), LIMIT, created=True, whole=bad
    )
    with pytest.raises(errors.ChecksumMismatch):
        now(admitted.land(ALICE, written(admitted.target, b"abc")))
    assert made.id not in core.store.uploads
    assert not core.blobs.upload_path(made.id).exists()


def test_a_discarded_last_body_undoes_its_checkpoints(core: Core) -> None:
    """A last body that checkpointed while it streamed and then fails the
    whole-file check leaves the offset where it was before it."""
    record = core.create(6)
    append(core, record.id, 0, b"abc")
    current = core.record(record.id)
    last = begin_append(
        core.uploads, current, AppendAsk(3), LIMIT, whole=sha256_of(b"abcdef")
    )
    assert last.checkpoints
    last.target.write_sha256([b"de"])
    now(last.checkpoint(2))
    assert core.record(record.id).received == 5
    last.target.write_sha256([b"X"])
    last.target.update_beside([b"deX"])
    with pytest.raises(errors.ChecksumMismatch):
        now(last.land(ALICE, last.target.close()))
    assert core.record(record.id).received == 3
    assert core.bytes_of(record.id) == b"abc"


def test_a_whole_file_check_is_a_known_hash_of_its_size() -> None:
    """A whole-file check is sha256 or sha512 with a digest of that size;
    a record whose kept check cannot be read checks nothing."""
    with pytest.raises(ValueError):
        ReprCheck("sha256", b"short")
    with pytest.raises(ValueError):
        ReprCheck("md5", hashlib.md5(b"x").digest())
    assert ReprCheck.kept_in({KEPT: "sha256 !!"}) is None
    kept = sha256_of(b"x").kept()
    assert ReprCheck.kept_in({KEPT: kept}) == sha256_of(b"x")


def test_metadata_keys_of_the_server_are_not_the_clients_to_set(core: Core) -> None:
    """Metadata keys starting with '_' are the server's: an upload created
    with one is Invalid."""
    with pytest.raises(errors.Invalid):
        core.create(3, metadata={KEPT: sha256_of(b"abc").kept()})


def test_a_complete_flag_of_unknown_size_ends_the_upload_with_its_body(
    core: Core,
) -> None:
    """An upload of unknown length, sent a last body whose size was not
    known in advance, becomes a file of exactly the bytes that arrived."""
    record = core.create(None)
    append(core, record.id, 0, b"abc")
    done, stored = append(core, record.id, 3, b"de", complete=True)
    assert (done.length, done.state) == (5, "complete")
    assert stored is not None and stored.size == 5


def test_expired_uploads_are_gone_and_the_sweeper_spares_busy_ones(
    core: Core,
) -> None:
    """Past its time an upload is Gone; the sweeper frees its bytes, but not
    while a body is still being written to it."""
    idle, busy = core.create(10), core.create(10)
    writing = begin_append(core.uploads, busy, AppendAsk(0), LIMIT)
    core.clock.advance(DAY + 1)
    with pytest.raises(errors.Gone):
        now(core.uploads.load(ALICE, idle.id))
    assert now(core.uploads.sweep()) == 2
    assert not core.blobs.upload_path(idle.id).exists()
    assert core.record(idle.id).state == "expired"
    assert core.blobs.upload_path(busy.id).exists()
    now(writing.aborted(writing.target.discard()))
    now(core.uploads.sweep())
    assert not core.blobs.upload_path(busy.id).exists()


def test_someone_elses_upload_is_not_found(core: Core) -> None:
    """Another user's upload looks like none; an admin sees it."""
    record = core.create(10)
    with pytest.raises(errors.NotFound):
        now(core.uploads.load(BOB, record.id))
    with pytest.raises(errors.NotFound):
        now(appendable(core.uploads, BOB, record.id))
    assert now(core.uploads.load(ADMIN, record.id)).id == record.id


def test_spans_land_in_any_order_and_complete_once_all_arrived(
    core: Core,
) -> None:
    """Spans sent last-first land side by side; completion refuses while a
    gap remains, refuses a wrong md5 and keeps the upload, then finishes."""
    data = b"0123456789" * 3
    first = now(
        spans.create_with_span(core.uploads, ALICE, "range", SpanAsk(20, 30, 30), LIMIT)
    )
    record = now(first.land(written(first.target, data[20:]), {"filename": "f"}))
    second = spans.begin_span(core.uploads, record, SpanAsk(0, 10, 30), LIMIT)
    record = now(second.land(written(second.target, data[:10]), {}))
    with pytest.raises(errors.Invalid) as early:
        now(spans.complete(core.uploads, ALICE, record))
    assert early.value.extra["missing"] == [[10, 20]]
    third = spans.begin_span(core.uploads, record, SpanAsk(10, 20, 30), LIMIT)
    record = now(third.land(written(third.target, data[10:20]), {}))
    assert record.received == 30
    with pytest.raises(errors.Invalid):
        now(spans.complete(core.uploads, ALICE, record, "0" * 32))
    assert core.record(record.id).state == "open"
    md5 = hashlib.md5(data).hexdigest()
    done, stored = now(spans.complete(core.uploads, ALICE, record, md5))
    assert done.state == "complete" and stored is not None
    assert stored.sha256 == hashlib.sha256(data).hexdigest()


def test_a_short_span_covers_nothing_and_frees_its_span(core: Core) -> None:
    """A body shorter than its span is Invalid and covers nothing; the span
    is free again for a retry."""
    record = core.create(10)
    short = spans.begin_span(core.uploads, record, SpanAsk(0, 5, 10), LIMIT)
    with pytest.raises(errors.Invalid):
        now(short.land(written(short.target, b"abc"), {}))
    assert core.record(record.id).ranges == ()
    retry = spans.begin_span(core.uploads, record, SpanAsk(0, 5, 10), LIMIT)
    assert now(retry.land(written(retry.target, b"abcde"), {})).ranges == ((0, 5),)


def test_an_open_ended_span_sets_the_length_to_its_size(core: Core) -> None:
    """A whole body of unknown size makes an upload of exactly that size,
    complete once it lands; an invalid first span creates no upload."""
    whole = now(
        spans.create_with_span(
            core.uploads, ALICE, "test", SpanAsk(0, None, None), LIMIT
        )
    )
    record = now(whole.land(written(whole.target, b"hello"), {}))
    assert (record.length, record.received) == (5, 5)
    before = set(core.store.uploads)
    with pytest.raises(errors.Invalid):
        now(
            spans.create_with_span(
                core.uploads, ALICE, "test", SpanAsk(0, 11, 10), LIMIT
            )
        )
    with pytest.raises(errors.TooLarge):
        now(
            spans.create_with_span(
                core.uploads, ALICE, "test", SpanAsk(0, 5, LIMIT + 1), LIMIT
            )
        )
    assert set(core.store.uploads) == before


def test_an_upload_another_instance_holds_goes_on_there_only_on_a_shared_store(
    core: Core,
) -> None:
    """Opened under another instance name: where instances share the store
    the upload is elsewhere (its requests go on to the holder); on a store
    of one instance (a host renamed since) it is this instance's."""
    opened = moved = upload(id="u9", holder="old-host", expires_at=DAY)
    core.store.uploads[opened.id] = moved
    core.uploads.instance = "new-host"
    assert now(core.uploads.load(ALICE, opened.id)) == moved
    core.uploads.shared = True
    with pytest.raises(errors.Elsewhere) as elsewhere:
        now(core.uploads.load(ALICE, opened.id))
    assert elsewhere.value.holder == "old-host"
    assert now(core.uploads.load(ALICE, opened.id, anywhere=True)) == moved


# -- final uploads opened before their parts (an S3 multipart upload's) -----------


def part_of(core: Core, final: UploadRecord | None, data: bytes) -> UploadRecord:
    """A complete partial upload of ``data`` (made for ``final``, if given)."""
    own = {rules.PART_OF: final.id} if final is not None else None
    part = now(
        core.uploads.create(ALICE, "test", len(data), {}, rules.PARTIAL, own=own)
    )
    admitted = begin_append(core.uploads, part, AppendAsk(0), LIMIT, created=True)
    done, _ = now(admitted.land(ALICE, written(admitted.target, data)))
    return done


def test_a_final_upload_opened_early_becomes_the_file_of_its_parts(
    core: Core,
) -> None:
    """A final upload opened without parts takes none of its own bytes;
    joined into, it becomes the file of the parts made for it, with the
    metadata added at the end, and the parts' bytes go."""
    final = now(
        core.uploads.create(ALICE, "test", None, {"filename": "a.txt"}, rules.FINAL)
    )
    with pytest.raises(errors.Forbidden):
        now(appendable(core.uploads, ALICE, final.id))
    with pytest.raises(errors.Forbidden):
        spans.begin_span(core.uploads, final, SpanAsk(0, 3, None), LIMIT)
    parts = [part_of(core, final, data) for data in (b"abc", b"de")]
    record, stored = now(
        core.uploads.assemble(
            ALICE, [p.id for p in parts], {"content_type": "text/plain"}, into=final
        )
    )
    assert stored is not None and record.id == final.id
    assert (record.state, record.file_id, record.length) == ("complete", stored.id, 5)
    assert (stored.filename, stored.content_type) == ("a.txt", "text/plain")
    assert core.blobs.path(stored.id).read_bytes() == b"abcde"
    assert stored.sha256 == hashlib.sha256(b"abcde").hexdigest()
    for part in parts:
        assert not core.blobs.upload_path(part.id).exists()
        assert core.record(part.id).file_id == stored.id


def test_a_join_that_fails_leaves_the_final_upload_open_and_empty(
    core: Core,
) -> None:
    """When the file cannot be made (its parent is not the owner's), the
    final upload stays open and empty and its parts stay, for another try."""
    final = now(core.uploads.create(ALICE, "test", None, {}, rules.FINAL))
    part = part_of(core, final, b"abc")
    with pytest.raises(errors.Unprocessable):
        now(core.uploads.assemble(ALICE, [part.id], {"parent": "x"}, into=final))
    assert core.record(final.id) == final
    assert core.bytes_of(final.id) == b""
    assert core.bytes_of(part.id) == b"abc"
    _, stored = now(core.uploads.assemble(ALICE, [part.id], {}, into=final))
    assert stored is not None and core.blobs.path(stored.id).read_bytes() == b"abc"


def test_a_part_made_for_one_upload_joins_no_other(core: Core) -> None:
    """A partial upload made for a final upload is refused by any other
    join (a tus final upload naming it, or another final upload)."""
    final = now(core.uploads.create(ALICE, "test", None, {}, rules.FINAL))
    other = now(core.uploads.create(ALICE, "test", None, {}, rules.FINAL))
    part = part_of(core, final, b"abc")
    loose = part_of(core, None, b"xyz")
    for into in (None, other):
        with pytest.raises(errors.Invalid):
            now(core.uploads.assemble(ALICE, [part.id], {}, into=into))
    with pytest.raises(errors.Invalid):
        now(core.uploads.assemble(ALICE, [loose.id], {}, into=final))


def test_parts_made_for_an_upload_are_not_listed_as_unfinished(core: Core) -> None:
    """The unfinished uploads listed are the final upload and loose parts,
    not the parts made for the final one; the server's own metadata keys
    are the server's alone to set."""
    final = now(core.uploads.create(ALICE, "test", None, {}, rules.FINAL))
    core.clock.advance(1)
    part_of(core, final, b"abc")
    loose = part_of(core, None, b"xyz")
    found = now(core.uploads.unfinished(ALICE))
    assert [r.id for r in found] == [final.id, loose.id]
    with pytest.raises(ValueError):
        now(core.uploads.create(ALICE, "test", 1, {}, own={"plain": "x"}))


def test_an_upload_ending_unfinished_is_heard_and_may_be_kept_alive(
    core: Core,
) -> None:
    """``on_ended`` hears uploads terminated or expired (not finished ones);
    touching an open upload moves its expiry, and only its expiry."""
    heard: list[str] = []

    async def ended(record: UploadRecord) -> None:
        heard.append(record.id)

    core.uploads.on_ended.append(ended)
    terminated, expiring, kept = core.create(3), core.create(3), core.create(3)
    now(core.uploads.delete(ALICE, terminated.id))
    core.clock.advance(DAY / 2)
    assert now(core.uploads.touch(kept))
    assert core.record(kept.id) == attrs.evolve(kept, expires_at=DAY * 1.5)
    core.clock.advance(DAY / 2 + 1)
    assert now(core.uploads.sweep()) == 1
    append(core, kept.id, 0, b"abc")
    assert heard == [terminated.id, expiring.id]
    assert not now(core.uploads.touch(expiring))
