"""Multipart uploads without HTTP: parts in any order, a part sent again,
the rules of completion (order, entity tags, the smallest part), the bytes
and sums of the file made, the multipart entity tag, abort, expiry with
the sweep, and listings of parts and of unfinished uploads."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.bucketcore import ALICE, BOB, DAY, ROOT, Core, make_core, md5, now, written
from uploadd import errors
from uploadd.buckets import ObjectMeta, Reason
from uploadd.buckets.multipart import MIN_PART
from uploadd.buckets.parts import multipart_etag
from uploadd.uploads import rules
from uploadd.uploads.appends import appendable


@pytest.fixture
def core(tmp_path: Path) -> Core:
    made = make_core(tmp_path, min_part=8)
    now(made.buckets.create(ALICE, "bkt"))
    return made


def reason(caught: pytest.ExceptionInfo[errors.UploaddError]) -> Any:
    return caught.value.extra.get("reason")


def start(core: Core, key: str = "k", meta: ObjectMeta | None = None) -> str:
    made = now(core.multipart.create(ALICE, "bkt", key, meta or ObjectMeta()))
    return made.upload_id


def complete(core: Core, upload_id: str, listed: list[tuple[int, str]]) -> Any:
    return now(core.multipart.complete(ALICE, "bkt", "k", upload_id, listed))


def part_files(core: Core) -> list[str]:
    """Upload data files left in the data dir (the parts' bytes)."""
    return sorted(p.stem for p in (core.blobs.root / "uploads").glob("*.bin"))


def test_parts_sent_in_any_order_join_in_the_order_listed(core: Core) -> None:
    """Parts uploaded 3, 1, 2 and completed as 1, 2, 3 make a file of their
    bytes in that order, with its sums right, its entity tag the md5 of the
    parts' md5s and the count; the parts and their bytes are gone. The same
    completion sent again answers the same while the key names that file."""
    meta = ObjectMeta("text/plain", {"colour": "red"}, {"cache-control": "no"})
    upload_id = start(core, meta=meta)
    chunks = {1: b"first---", 2: b"second--", 3: b"end"}
    sent = {n: core.send_part(upload_id, n, chunks[n]) for n in (3, 1, 2)}
    assert {n: p.etag for n, p in sent.items()} == {
        n: md5(data) for n, data in chunks.items()
    }
    info = complete(core, upload_id, [(n, f'"{sent[n].etag}"') for n in (1, 2, 3)])
    whole = chunks[1] + chunks[2] + chunks[3]
    record = core.store.files[info.file_id]
    assert core.content(record.id) == whole
    assert record.sha256 == hashlib.sha256(whole).hexdigest()
    assert record.md5 == md5(whole)
    assert (record.filename, record.size, record.content_type) == (
        "k",
        19,
        "text/plain",
    )
    joined = b"".join(bytes.fromhex(md5(chunks[n])) for n in (1, 2, 3))
    assert info.etag == hashlib.md5(joined).hexdigest() + "-3"
    assert info.etag == multipart_etag([sent[n].etag for n in (1, 2, 3)])
    assert info.meta == meta
    got, _ = now(core.buckets.get_object(ALICE, "bkt", "k"))
    assert got == info
    assert now(core.store.parts_of(upload_id)) == []
    assert part_files(core) == []
    assert all(
        u.metadata.get(rules.PART_OF) != upload_id for u in core.store.uploads.values()
    )
    assert core.store.uploads[upload_id].state == "complete"
    # A client retrying the completion gets the same answer, and no more.
    assert complete(core, upload_id, [(n, sent[n].etag) for n in (1, 2, 3)]) == info
    with pytest.raises(errors.NotFound) as again:
        complete(core, upload_id, [(1, sent[1].etag)])
    assert reason(again) == Reason.NO_UPLOAD
    core.put("bkt", "k", b"newer")
    with pytest.raises(errors.NotFound):
        complete(core, upload_id, [(n, sent[n].etag) for n in (1, 2, 3)])


def test_a_part_sent_again_replaces_the_one_before(core: Core) -> None:
    """Sending a part number again replaces the part: the old bytes and
    record go, listing shows the new one, completion uses it."""
    upload_id = start(core)
    old = core.send_part(upload_id, 1, b"old-bytes")
    new = core.send_part(upload_id, 1, b"new-bytes", checksum=("CRC32", "AAAAAA=="))
    assert old.part_upload_id not in core.store.uploads
    assert part_files(core) == sorted([upload_id, new.part_upload_id])
    listed = now(core.multipart.list_parts(ALICE, "bkt", "k", upload_id)).parts
    assert listed == [new]
    assert (new.checksum_algorithm, new.checksum) == ("CRC32", "AAAAAA==")
    with pytest.raises(errors.Invalid) as stale:
        complete(core, upload_id, [(1, old.etag)])
    assert reason(stale) == Reason.BAD_PART
    info = complete(core, upload_id, [(1, new.etag)])
    assert core.content(info.file_id) == b"new-bytes"


def test_completion_refuses_what_breaks_its_rules_and_changes_nothing(
    core: Core,
) -> None:
    """Parts out of order or twice (PART_ORDER), a wrong entity tag or a
    part never sent (BAD_PART), a part but the last under the minimum
    (PART_TOO_SMALL), no parts (NO_PARTS), a part number out of range
    (BAD_PART_NUMBER), parts adding up past the largest object (TooLarge):
    refused, and the upload can still complete."""
    upload_id = start(core)
    one = core.send_part(upload_id, 1, b"12345678")
    two = core.send_part(upload_id, 2, b"short")
    three = core.send_part(upload_id, 3, b"last")
    for listed, why in (
        ([(2, two.etag), (1, one.etag)], Reason.PART_ORDER),
        ([(1, one.etag), (1, one.etag)], Reason.PART_ORDER),
        ([(1, md5(b"other"))], Reason.BAD_PART),
        ([(1, one.etag), (4, one.etag)], Reason.BAD_PART),
        ([(1, one.etag), (2, two.etag), (3, three.etag)], Reason.PART_TOO_SMALL),
        ([], Reason.NO_PARTS),
        ([(0, one.etag)], Reason.BAD_PART_NUMBER),
        ([(10_001, one.etag)], Reason.BAD_PART_NUMBER),
    ):
        with pytest.raises(errors.Invalid) as caught:
            complete(core, upload_id, listed)
        assert reason(caught) == why, listed
    core.multipart.max_size = 11
    with pytest.raises(errors.TooLarge) as large:
        complete(core, upload_id, [(1, one.etag), (3, three.etag)])
    assert reason(large) == Reason.TOO_LARGE
    core.multipart.max_size = 12
    assert len(now(core.store.parts_of(upload_id))) == 3
    assert core.store.uploads[upload_id].state == "open"
    info = complete(core, upload_id, [(1, one.etag.upper()), (3, three.etag)])
    assert core.content(info.file_id) == b"12345678last"
    # The part left out went with the completion.
    assert two.part_upload_id not in core.store.uploads
    assert part_files(core) == []


def test_the_smallest_part_is_five_mebibytes_by_default(tmp_path: Path) -> None:
    """By default every part but the last needs 5 MiB; parts of exactly
    that make a file of their bytes."""
    core = make_core(tmp_path, min_part=MIN_PART)
    now(core.buckets.create(ALICE, "bkt"))
    upload_id = start(core)
    big = bytes(range(256)) * (MIN_PART // 256)
    first = core.send_part(upload_id, 1, big)
    short = core.send_part(upload_id, 2, big[:-1])
    last = core.send_part(upload_id, 3, b"tail")
    with pytest.raises(errors.Invalid) as caught:
        complete(core, upload_id, [(1, first.etag), (2, short.etag), (3, last.etag)])
    assert reason(caught) == Reason.PART_TOO_SMALL
    assert caught.value.extra["minimum"] == 5 * 1024 * 1024
    info = complete(core, upload_id, [(1, first.etag), (3, last.etag)])
    record = core.store.files[info.file_id]
    assert record.sha256 == hashlib.sha256(big + b"tail").hexdigest()


def test_completing_over_a_key_makes_a_new_version_of_its_file(core: Core) -> None:
    """An object made of parts continues the key's versions (its parent is
    the file the key named)."""
    before = core.put("bkt", "k", b"single")
    upload_id = start(core)
    part = core.send_part(upload_id, 1, b"parts")
    info = complete(core, upload_id, [(1, part.etag)])
    assert core.store.files[info.file_id].parent == before.file_id


def test_aborting_removes_the_upload_and_its_parts(core: Core) -> None:
    """Abort forgets the upload, every part and their bytes; it is gone
    for parts, completion and listings."""
    upload_id = start(core)
    part = core.send_part(upload_id, 1, b"12345678")
    now(core.multipart.abort(ALICE, "bkt", "k", upload_id))
    assert upload_id not in core.store.uploads
    assert part.part_upload_id not in core.store.uploads
    assert now(core.store.parts_of(upload_id)) == []
    assert part_files(core) == []
    for gone in (
        core.multipart.begin_part(ALICE, "bkt", "k", upload_id, 2, 3),
        core.multipart.complete(ALICE, "bkt", "k", upload_id, [(1, part.etag)]),
        core.multipart.abort(ALICE, "bkt", "k", upload_id),
        core.multipart.list_parts(ALICE, "bkt", "k", upload_id),
    ):
        with pytest.raises(errors.NotFound) as caught:
            now(gone)
        assert reason(caught) == Reason.NO_UPLOAD
    assert now(core.multipart.list_uploads(ALICE, "bkt")).uploads == []


def test_a_part_that_lands_after_its_upload_ended_goes(core: Core) -> None:
    """A part body still streaming when its upload is aborted is refused
    when it lands (NO_UPLOAD), and its bytes go."""
    upload_id = start(core)
    body = now(core.multipart.begin_part(ALICE, "bkt", "k", upload_id, 1, 3))
    now(core.multipart.abort(ALICE, "bkt", "k", upload_id))
    with pytest.raises(errors.NotFound) as caught:
        now(body.land(ALICE, written(body.target, b"abc")))
    assert reason(caught) == Reason.NO_UPLOAD
    assert part_files(core) == []
    assert core.store.uploads == {}


def test_a_part_body_that_breaks_off_leaves_no_part(core: Core) -> None:
    """A body that breaks off, or lands short of its length (INCOMPLETE_BODY),
    takes its part record and bytes with it."""
    upload_id = start(core)
    body = now(core.multipart.begin_part(ALICE, "bkt", "k", upload_id, 1, 10))
    body.target.write_sha256([b"abc"])
    now(body.append.aborted(body.target.discard()))
    short = now(core.multipart.begin_part(ALICE, "bkt", "k", upload_id, 1, 10))
    with pytest.raises(errors.Invalid) as caught:
        now(short.land(ALICE, written(short.target, b"abc")))
    assert reason(caught) == Reason.INCOMPLETE_BODY
    assert part_files(core) == [upload_id]
    assert now(core.store.parts_of(upload_id)) == []
    assert list(core.store.uploads) == [upload_id]


def test_unfinished_uploads_expire_with_their_parts_and_parts_keep_them_alive(
    core: Core,
) -> None:
    """Each part moves its upload's expiry; left idle past it, the sweep
    expires the upload and removes its parts' records and bytes."""
    upload_id = start(core)
    core.clock.advance(DAY * 0.75)
    core.send_part(upload_id, 1, b"12345678")
    core.clock.advance(DAY * 0.5)
    assert now(core.uploads.sweep()) == 0
    assert now(core.multipart.list_parts(ALICE, "bkt", "k", upload_id)).parts
    core.clock.advance(DAY * 0.5 + 1)
    assert now(core.uploads.sweep()) == 1
    assert core.store.uploads[upload_id].state == "expired"
    assert [u.id for u in core.store.uploads.values()] == [upload_id]
    assert now(core.store.parts_of(upload_id)) == []
    assert part_files(core) == []
    with pytest.raises(errors.NotFound):
        now(core.multipart.list_parts(ALICE, "bkt", "k", upload_id))


def test_the_owner_sees_the_upload_among_unfinished_ones_never_its_parts(
    core: Core,
) -> None:
    """Resumable.unfinished (GET /uploads/) lists the multipart upload with
    its bucket and key, not the parts; it takes no bytes of its own."""
    upload_id = start(core, "photos/cat.jpg")
    now(core.multipart.begin_part(ALICE, "bkt", "photos/cat.jpg", upload_id, 1, 3))
    core.send_part(upload_id, 2, b"abc", key="photos/cat.jpg")
    (shown,) = now(core.uploads.unfinished(ALICE))
    assert (shown.id, shown.protocol, shown.concat) == (upload_id, "s3", "final")
    assert rules.shown(shown.metadata)["key"] == "photos/cat.jpg"
    assert rules.shown(shown.metadata)["filename"] == "cat.jpg"
    with pytest.raises(errors.Forbidden):
        now(appendable(core.uploads, ALICE, upload_id))


def test_parts_list_by_number_in_pages(core: Core) -> None:
    """ListParts gives parts by number after a marker, a page at a time."""
    upload_id = start(core)
    for number in (5, 1, 3, 2, 4):
        core.send_part(upload_id, number, b"part %d" % number)
    first = now(core.multipart.list_parts(ALICE, "bkt", "k", upload_id, 0, 2))
    assert [p.part_number for p in first.parts] == [1, 2]
    assert (first.truncated, first.next_marker) == (True, 2)
    rest = now(core.multipart.list_parts(ALICE, "bkt", "k", upload_id, 2, 10))
    assert [p.part_number for p in rest.parts] == [3, 4, 5]
    assert (rest.truncated, rest.next_marker) == (False, None)
    assert rest.upload.key == "k" and rest.upload.upload_id == upload_id


def test_unfinished_uploads_list_by_key_with_prefixes_and_markers(
    core: Core,
) -> None:
    """ListMultipartUploads gives one bucket's open uploads by key and then
    by when they began, under a prefix, rolled up by a delimiter, after a
    key marker (and an upload id marker for that key), a page at a time."""
    now(core.buckets.create(ALICE, "other"))
    ids: dict[str, list[str]] = {}
    for key in ("b/2", "a", "b/1", "c", "a"):
        ids.setdefault(key, []).append(start(core, key))
        core.clock.advance(1)
    now(core.multipart.create(ALICE, "other", "a", ObjectMeta()))

    def page(**asked: Any) -> Any:
        return now(core.multipart.list_uploads(ALICE, "bkt", **asked))

    everything = page()
    order = [(u.key, u.upload_id) for u in everything.uploads]
    assert order == [
        ("a", ids["a"][0]),
        ("a", ids["a"][1]),
        ("b/1", ids["b/1"][0]),
        ("b/2", ids["b/2"][0]),
        ("c", ids["c"][0]),
    ]
    assert not everything.truncated
    rolled = page(delimiter="/")
    assert [u.key for u in rolled.uploads] == ["a", "a", "c"]
    assert rolled.prefixes == ["b/"]
    assert [u.key for u in page(prefix="b/").uploads] == ["b/1", "b/2"]
    first = page(max_uploads=2)
    assert first.truncated
    assert (first.next_key_marker, first.next_upload_id_marker) == ("a", ids["a"][1])
    after = page(key_marker="a", upload_id_marker=ids["a"][0])
    assert [u.upload_id for u in after.uploads][:2] == [ids["a"][1], ids["b/1"][0]]
    assert [u.key for u in page(key_marker="a").uploads] == ["b/1", "b/2", "c"]
    cut = page(delimiter="/", max_uploads=3)
    assert (cut.truncated, cut.next_key_marker, cut.next_upload_id_marker) == (
        True,
        "b/",
        None,
    )
    assert [u.key for u in page(delimiter="/", key_marker="b/").uploads] == ["c"]


def test_multipart_uploads_are_the_bucket_owners(core: Core) -> None:
    """Another user cannot see or touch an upload (Forbidden on the
    bucket); an admin's upload and its file are the bucket owner's; the
    key's rules hold when an upload begins; a deleted bucket takes its
    unfinished uploads with it."""
    with pytest.raises(errors.Invalid):
        now(core.multipart.create(ALICE, "bkt", "", ObjectMeta()))
    upload_id = now(core.multipart.create(ROOT, "bkt", "k", ObjectMeta())).upload_id
    assert core.store.uploads[upload_id].owner_id == ALICE.user_id
    with pytest.raises(errors.Forbidden):
        now(core.multipart.list_parts(BOB, "bkt", "k", upload_id))
    with pytest.raises(errors.NotFound):
        now(core.multipart.list_parts(ALICE, "bkt", "other-key", upload_id))
    part = core.send_part(upload_id, 1, b"by root", who=ROOT)
    info = now(core.multipart.complete(ROOT, "bkt", "k", upload_id, [(1, part.etag)]))
    assert core.store.files[info.file_id].owner_id == ALICE.user_id
    doomed = start(core, "x")
    core.send_part(doomed, 1, b"12345678", key="x")
    now(core.buckets.delete_object(ALICE, "bkt", "k"))
    now(core.buckets.delete(ALICE, "bkt"))
    assert doomed not in core.store.uploads
    assert part_files(core) == []
