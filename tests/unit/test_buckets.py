"""Buckets and objects without HTTP: names, who may do what, keys, versions
through the file ``parent`` chain, deletion, copies, and listings checked
against a plain reference over a few hundred keys, on a memory store."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pytest

from noded.threads import run_inline
from tests.bucketcore import ALICE, BOB, ROOT, Core, make_core, md5, now
from uploadd import errors
from uploadd.auth.tokens import Principal
from uploadd.buckets import MAX_KEYS, Listing, ObjectMeta, Reason
from uploadd.buckets.listing import continuation_token
from uploadd.buckets.rules import check_bucket_name, filename_of
from uploadd.store.buckets import ObjectRecord

READER = Principal(1, "alice", frozenset({"read"}))
KIOSK = Principal(1, "alice", frozenset({"upload-only"}))


@pytest.fixture
def core(tmp_path: Path) -> Core:
    made = make_core(tmp_path)
    now(made.buckets.create(ALICE, "bkt"))
    return made


def reason(caught: pytest.ExceptionInfo[errors.UploaddError]) -> Any:
    return caught.value.extra.get("reason")


# -- buckets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["abc", "my-bucket.example", "a" * 63, "0bucket9", "x.y-z"],
)
def test_bucket_names_that_follow_the_rules_are_taken(name: str) -> None:
    """3-63 lowercase letters, digits, dots and hyphens, letter or digit at
    both ends."""
    check_bucket_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "Bucket",
        "bucket_name",
        "-bucket",
        "bucket-",
        ".bucket",
        "bucket.",
        "my..bucket",
        "192.168.1.20",
        "xn--bucket",
        "sthree-bucket",
        "bucket-s3alias",
        "bucket--ol-s3",
        "b\u00fccket",
        "b c",
    ],
)
def test_bucket_names_that_break_the_rules_are_refused(name: str) -> None:
    """Too short or long, capitals, underscores, a dot or hyphen at an end,
    '..', an IP address, names S3 reserves, other characters: Invalid."""
    with pytest.raises(errors.Invalid) as caught:
        check_bucket_name(name)
    assert reason(caught) == Reason.BAD_BUCKET_NAME


def test_a_taken_name_says_whose_it_is(core: Core) -> None:
    """Creating a bucket that exists is a Conflict: BUCKET_OWNED for its
    owner, BUCKET_TAKEN for anyone else (an admin too); nothing changes."""
    with pytest.raises(errors.Conflict) as mine:
        now(core.buckets.create(ALICE, "bkt"))
    assert reason(mine) == Reason.BUCKET_OWNED
    for other in (BOB, ROOT):
        with pytest.raises(errors.Conflict) as theirs:
            now(core.buckets.create(other, "bkt"))
        assert reason(theirs) == Reason.BUCKET_TAKEN
    assert [b.owner_id for b in now(core.store.list_buckets(None))] == [ALICE.user_id]


def test_a_bucket_is_its_owners_and_admins(core: Core) -> None:
    """The owner and admins may use a bucket; anyone else is Forbidden
    (NOT_YOURS); a missing one is NotFound (NO_BUCKET). Each user lists
    their own buckets."""
    now(core.buckets.create(BOB, "bobs"))
    assert now(core.buckets.get(ALICE, "bkt")).owner_id == ALICE.user_id
    assert now(core.buckets.get(ROOT, "bkt")).owner_id == ALICE.user_id
    with pytest.raises(errors.Forbidden) as other:
        now(core.buckets.get(BOB, "bkt"))
    assert reason(other) == Reason.NOT_YOURS
    with pytest.raises(errors.NotFound) as missing:
        now(core.buckets.get(ALICE, "nothing"))
    assert reason(missing) == Reason.NO_BUCKET
    assert [b.name for b in now(core.buckets.list_buckets(ALICE))] == ["bkt"]
    assert [b.name for b in now(core.buckets.list_buckets(BOB))] == ["bobs"]


def test_scopes_limit_what_a_bucket_owner_may_do(core: Core) -> None:
    """A read-only credential lists and reads but neither stores nor
    manages; an upload-only one stores and nothing else, not even reading
    back its own object (NOT_ALLOWED)."""
    core.put("bkt", "k", b"data", who=KIOSK)
    assert now(core.buckets.get_object(READER, "bkt", "k"))[0].size == 4
    assert now(core.buckets.list_objects(READER, "bkt")).contents[0].key == "k"
    for refused in (
        core.buckets.create(READER, "new-one"),
        core.buckets.delete(READER, "bkt"),
        core.buckets.writable(READER, "bkt", "k"),
        core.buckets.get_object(KIOSK, "bkt", "k"),
        core.buckets.list_objects(KIOSK, "bkt"),
        core.buckets.list_buckets(KIOSK),
        core.buckets.delete_object(KIOSK, "bkt", "k"),
        core.buckets.create(KIOSK, "new-one"),
    ):
        with pytest.raises(errors.Forbidden) as caught:
            now(refused)
        assert reason(caught) == Reason.NOT_ALLOWED


def test_only_an_empty_bucket_is_deleted(core: Core) -> None:
    """A bucket holding an object refuses deletion (Conflict,
    BUCKET_NOT_EMPTY); once its objects are gone it goes."""
    core.put("bkt", "k", b"x")
    with pytest.raises(errors.Conflict) as caught:
        now(core.buckets.delete(ALICE, "bkt"))
    assert reason(caught) == Reason.BUCKET_NOT_EMPTY
    assert now(core.buckets.delete_object(ALICE, "bkt", "k"))
    now(core.buckets.delete(ALICE, "bkt"))
    assert now(core.store.get_bucket("bkt")) is None
    with pytest.raises(errors.NotFound):
        now(core.buckets.delete(ALICE, "bkt"))


def test_cors_rules_are_kept_for_the_edge(core: Core) -> None:
    """A bucket keeps the CORS document the edge gives it until cleared."""
    now(core.buckets.set_cors(ALICE, "bkt", "<CORSConfiguration/>"))
    assert now(core.buckets.get(ALICE, "bkt")).cors == "<CORSConfiguration/>"
    now(core.buckets.set_cors(ALICE, "bkt", None))
    assert now(core.buckets.get(ALICE, "bkt")).cors is None


# -- keys and objects ----------------------------------------------------------------


def test_keys_are_one_to_1024_bytes_of_utf8_without_nul(core: Core) -> None:
    """A key of 1024 bytes is taken; longer is KEY_TOO_LONG; an empty key,
    NUL or text that is not UTF-8 is BAD_KEY."""
    longest = "\u00e9" * 512
    now(core.buckets.writable(ALICE, "bkt", longest))
    for key, why in (
        (longest + "x", Reason.KEY_TOO_LONG),
        ("", Reason.BAD_KEY),
        ("a\x00b", Reason.BAD_KEY),
        ("a\ud800", Reason.BAD_KEY),
    ):
        with pytest.raises(errors.Invalid) as caught:
            now(core.buckets.writable(ALICE, "bkt", key))
        assert reason(caught) == why


def test_an_objects_file_is_named_after_the_keys_last_segment() -> None:
    """The file name is the last segment that makes a name."""
    assert filename_of("photos/2024/cat.jpg") == "cat.jpg"
    assert filename_of("photos/2024/") == "2024"
    assert filename_of("a\\b.txt") == "b.txt"
    assert filename_of("x/../") == "x"
    assert filename_of("///") == "unnamed"


def test_an_object_is_a_file_with_what_the_client_said_of_it(core: Core) -> None:
    """A stored object is a file of the bucket's owner named after the key;
    the content type as given, user metadata, headers and checksums are
    kept with the object; its entity tag is the md5."""
    meta = ObjectMeta(
        "Text/Plain; charset=UTF-8",
        {"colour": "blue"},
        {"cache-control": "no-cache"},
        {"CRC32": "AAAAAA=="},
    )
    info = core.put("bkt", "docs/readme.txt", b"hello", meta)
    assert (info.key, info.size, info.etag) == ("docs/readme.txt", 5, md5(b"hello"))
    assert info.content_type == "Text/Plain; charset=UTF-8"
    assert info.meta == meta
    got, record = now(core.buckets.get_object(ALICE, "bkt", "docs/readme.txt"))
    assert got == info
    assert (record.filename, record.content_type) == ("readme.txt", "text/plain")
    assert record.owner_id == ALICE.user_id
    assert record.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert core.content(record.id) == b"hello"
    plain = core.put("bkt", "photo.jpg", b"jpeg")
    assert plain.content_type == "image/jpeg"
    odd = core.put("bkt", "odd", b"?", ObjectMeta("not a type"))
    assert odd.content_type == "not a type"
    assert core.store.files[odd.file_id].content_type == "application/octet-stream"
    with pytest.raises(errors.NotFound) as missing:
        now(core.buckets.get_object(ALICE, "bkt", "nothing"))
    assert reason(missing) == Reason.NO_KEY


def test_putting_a_key_again_makes_a_new_version_of_its_file(core: Core) -> None:
    """Each put stores a new file whose parent is the one before; the object
    is the newest; the history goes back through every version."""
    first = core.put("bkt", "k", b"one")
    second = core.put("bkt", "k", b"two")
    third = core.put("bkt", "k", b"three")
    info, record = now(core.buckets.get_object(ALICE, "bkt", "k"))
    assert info.file_id == third.file_id and core.content(record.id) == b"three"
    assert record.parent == second.file_id
    assert core.store.files[second.file_id].parent == first.file_id
    assert core.store.files[first.file_id].parent is None
    history = now(core.buckets.history(ALICE, "bkt", "k"))
    assert [f.id for f in history] == [third.file_id, second.file_id, first.file_id]
    assert [f.id for f in now(core.store.versions_of(first.file_id))] == [
        second.file_id
    ]


def test_an_admin_stores_into_the_owners_bucket_as_the_owner(core: Core) -> None:
    """A file an admin puts into someone's bucket is the bucket owner's."""
    info = core.put("bkt", "k", b"by root", who=ROOT)
    assert core.store.files[info.file_id].owner_id == ALICE.user_id
    again = core.put("bkt", "k", b"again", who=ROOT)
    assert core.store.files[again.file_id].parent == info.file_id


def test_deleting_an_object_deletes_its_file_and_every_version(
    core: Core,
) -> None:
    """The key goes, and so does each version's file and bytes, as deleting
    a file does (with its file.deleted event); other keys stay; a missing
    key is no error (False)."""
    versions = [core.put("bkt", "k", data).file_id for data in (b"1", b"22", b"333")]
    kept = core.put("bkt", "other", b"stays")
    assert now(core.buckets.delete_object(ALICE, "bkt", "k"))
    assert now(core.store.get_object("bkt", "k")) is None
    for file_id in versions:
        assert file_id not in core.store.files
        assert not core.blobs.path(file_id).exists()
    deleted = [
        e.payload["file_id"] for e in core.store.events if e.topic == "file.deleted"
    ]
    assert sorted(deleted) == sorted(versions)
    assert core.content(kept.file_id) == b"stays"
    assert not now(core.buckets.delete_object(ALICE, "bkt", "k"))


def test_deleting_an_objects_file_removes_the_object(core: Core) -> None:
    """An object goes with its file, however the file is deleted."""
    info = core.put("bkt", "k", b"x")
    now(core.library.delete(core.store.files[info.file_id]))
    with pytest.raises(errors.NotFound):
        now(core.buckets.get_object(ALICE, "bkt", "k"))


def test_a_copy_is_a_new_file_with_the_same_bytes(core: Core) -> None:
    """Copying makes a new file with the source's bytes and sums, with the
    source's metadata or new metadata, as the newest version of the target
    key; the source is untouched."""
    now(core.buckets.create(ALICE, "cpy"))
    meta = ObjectMeta("text/csv", {"a": "1"})
    source = core.put("bkt", "data.csv", b"1,2,3", meta)
    copied = now(
        core.buckets.copy_object(ALICE, "bkt", "data.csv", "cpy", "x/copy.csv")
    )
    assert copied.file_id != source.file_id
    assert (copied.etag, copied.size, copied.meta) == (source.etag, 5, meta)
    record = core.store.files[copied.file_id]
    assert record.sha256 == core.store.files[source.file_id].sha256
    assert (record.filename, core.content(record.id)) == ("copy.csv", b"1,2,3")
    replaced = now(
        core.buckets.copy_object(
            ALICE, "bkt", "data.csv", "cpy", "x/copy.csv", ObjectMeta("text/plain")
        )
    )
    assert replaced.meta == ObjectMeta("text/plain")
    assert core.store.files[replaced.file_id].parent == copied.file_id
    assert core.content(source.file_id) == b"1,2,3"


def test_a_key_copied_onto_itself_needs_new_metadata(core: Core) -> None:
    """Copying a key onto itself unchanged is Invalid (COPY_TO_ITSELF); with
    new metadata it makes a new version."""
    source = core.put("bkt", "k", b"x")
    with pytest.raises(errors.Invalid) as caught:
        now(core.buckets.copy_object(ALICE, "bkt", "k", "bkt", "k"))
    assert reason(caught) == Reason.COPY_TO_ITSELF
    again = now(
        core.buckets.copy_object(ALICE, "bkt", "k", "bkt", "k", ObjectMeta("a/b"))
    )
    assert core.store.files[again.file_id].parent == source.file_id


def test_a_copy_whose_source_is_on_nodes_only_is_fetched_or_unavailable(
    core: Core,
) -> None:
    """Without the source's bytes on this disk a copy is Unavailable
    (SOURCE_ELSEWHERE), unless the buckets can fetch them."""
    source = core.put("bkt", "k", b"far away")
    core.blobs.path(source.file_id).unlink()
    with pytest.raises(errors.Unavailable) as caught:
        now(core.buckets.copy_object(ALICE, "bkt", "k", "bkt", "copy"))
    assert reason(caught) == Reason.SOURCE_ELSEWHERE
    assert list(core.blobs.incoming.iterdir()) == []

    async def fetch(record: Any, path: Path) -> None:
        await run_inline(path.write_bytes, b"far away")

    core.buckets.fetch = fetch
    copied = now(core.buckets.copy_object(ALICE, "bkt", "k", "bkt", "copy"))
    assert core.content(copied.file_id) == b"far away"


# -- listings ----------------------------------------------------------------------


def listed(page: Listing) -> list[str]:
    """A page's entries in order: keys and common prefixes together."""
    return sorted([o.key for o in page.contents] + page.prefixes)


def reference(keys: list[str], prefix: str, delimiter: str, after: str) -> list[str]:
    """What a listing must give, the plain way: every key under ``prefix``
    after ``after`` in code point order, those holding ``delimiter`` after
    the prefix given once as their common prefix (unless at or before
    ``after``)."""
    entries: list[str] = []
    for key in sorted(keys):
        if not key.startswith(prefix) or key <= after:
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
            if common <= after or (entries and entries[-1] == common):
                continue
            entries.append(common)
        else:
            entries.append(key)
    return entries


def many_keys() -> list[str]:
    """A few hundred keys, '/'-heavy, with accents, CJK, emoji, spaces,
    empty segments and keys that end with '/'."""
    chance = random.Random(15)
    segments = ["a", "b", "docs", "\u00e9t\u00e9", "\u65e5\u672c", "\U0001f600"]
    segments += ["x y", "", "a.b"]
    keys = {"a", "a/", "a0", "docs/", "z"}
    while len(keys) < 300:
        depth = chance.randint(1, 4)
        key = "/".join(chance.choice(segments) for _ in range(depth))
        if chance.random() < 0.1:
            key += "/"
        if key:
            keys.add(key)
    return sorted(keys)


@pytest.fixture
def full(core: Core) -> Core:
    """The bucket with :func:`many_keys`, all naming one file."""
    seed = core.put("bkt", "seed", b"x")
    now(core.store.delete_object("bkt", "seed"))
    for key in many_keys():
        made = ObjectRecord("bkt", key, seed.file_id, {"size": 1}, 1.0)
        now(core.store.put_object(made))
    return core


@pytest.mark.parametrize("prefix", ["", "a/", "docs/", "\u00e9", "a/b/", "nothing"])
@pytest.mark.parametrize("delimiter", ["", "/", "b"])
@pytest.mark.parametrize("max_keys", [1, 7, 1000])
def test_paging_with_tokens_lists_what_the_reference_lists(
    full: Core, prefix: str, delimiter: str, max_keys: int
) -> None:
    """Page after page, continued by each page's token, the listing gives
    exactly the reference's entries in order, each page full but the last,
    which says it is not truncated."""
    keys = many_keys()
    expected = reference(keys, prefix, delimiter, "")
    got: list[str] = []
    token = None
    for _ in range(len(keys) + 2):
        page = now(
            full.buckets.list_objects(
                ALICE, "bkt", prefix, delimiter, max_keys, token=token
            )
        )
        got.extend(listed(page))
        if not page.truncated:
            assert page.next_token is None
            break
        assert len(page.contents) + len(page.prefixes) == max_keys
        assert page.next_marker == listed(page)[-1]
        token = page.next_token
    assert got == expected


@pytest.mark.parametrize("delimiter", ["", "/"])
def test_markers_and_start_after_continue_as_the_reference_does(
    full: Core, delimiter: str
) -> None:
    """Listing from a start (a key, a prefix given before, anything) gives
    the reference's entries after it; a page's last entry (NextMarker) as
    the next start continues it."""
    keys = many_keys()
    for start in ("", "a/", "a/b", "docs/", "\u00e9t\u00e9/", "m", "\U0001f600"):
        expected = reference(keys, "", delimiter, start)
        got: list[str] = []
        after = start
        while True:
            page = now(
                full.buckets.list_objects(ALICE, "bkt", "", delimiter, 50, after)
            )
            got.extend(listed(page))
            if not page.truncated:
                break
            assert page.next_marker is not None
            after = page.next_marker
        assert got == expected, start


def test_a_listing_skips_rolled_up_keys_with_few_queries(full: Core) -> None:
    """With a delimiter, the keys under each common prefix are skipped by
    one query from the prefix's successor, not read."""
    asked: list[int] = []
    listing = full.store.list_objects

    async def counted(*args: Any, **kwargs: Any) -> Any:
        asked.append(1)
        return await listing(*args, **kwargs)

    full.store.list_objects = counted  # type: ignore[method-assign]
    page = now(full.buckets.list_objects(ALICE, "bkt", "", "/", 1000))
    top = reference(many_keys(), "", "/", "")
    assert listed(page) == top and not page.truncated
    assert len(asked) <= len(page.prefixes) + 2


def test_listing_arguments_are_checked_and_max_keys_capped(full: Core) -> None:
    """max-keys is capped at 1000 and may not be negative; max-keys 0 gives
    an empty page; a token the server did not make is BAD_TOKEN."""
    page = now(full.buckets.list_objects(ALICE, "bkt", max_keys=5000))
    assert len(page.contents) == MAX_KEYS or not page.truncated
    assert len(page.contents) <= MAX_KEYS
    empty = now(full.buckets.list_objects(ALICE, "bkt", max_keys=0))
    assert (empty.contents, empty.prefixes, empty.truncated) == ([], [], False)
    with pytest.raises(errors.Invalid) as negative:
        now(full.buckets.list_objects(ALICE, "bkt", max_keys=-1))
    assert reason(negative) == Reason.BAD_ARGUMENT
    for token in ("garbage!", "2abc", "1" + "_" * 5):
        with pytest.raises(errors.Invalid) as caught:
            now(full.buckets.list_objects(ALICE, "bkt", token=token))
        assert reason(caught) == Reason.BAD_TOKEN
    resumed = now(
        full.buckets.list_objects(ALICE, "bkt", token=continuation_token("z"))
    )
    assert [o.key for o in resumed.contents] == reference(many_keys(), "", "", "z")


def test_listed_objects_carry_size_tag_and_time(core: Core) -> None:
    """A listing's objects show what HEAD shows: size, entity tag, type,
    when the key last got a file."""
    core.clock.advance(100)
    info = core.put("bkt", "k", b"12345", ObjectMeta("text/plain"))
    (shown,) = now(core.buckets.list_objects(ALICE, "bkt")).contents
    assert shown == info
    assert (shown.size, shown.etag, shown.modified) == (5, md5(b"12345"), 100.0)
