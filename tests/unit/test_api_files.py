"""The /files family over StubTreq: uploads, listing, reading, deleting, scopes."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest_twisted

from tests.support import Harness, Reply, auth, harness, multipart
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import Event, FileRecord, Page, Rendition
from uploadd.store.memory import MemoryStore


async def put(app: Harness, token: str, name: str, data: bytes, **params: str) -> Reply:
    return await app.call(
        "PUT", f"/files/{name}", data=data, headers=auth(token), params=params
    )


async def post_form(app: Harness, token: str, body: bytes, ctype: bytes) -> Reply:
    return await app.call(
        "POST", "/files", data=body, headers={**auth(token), b"content-type": [ctype]}
    )


@pytest_twisted.ensureDeferred()
async def test_put_stores_the_body_with_its_sha256(app: Harness) -> None:
    """PUT /files/{name} answers 201 with the file and its sha256; its md5
    is not computed unless ``[storage] digests`` asks, and shows as null."""
    token = app.user("alice")
    data = b"hello uploadd\n" * 1000
    response = await put(app, token, "greeting.txt", data)
    assert response.code == 201
    body = response.json()
    assert body["filename"] == "greeting.txt"
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["md5"] is None
    assert body["content_type"] == "text/plain"
    assert body["parent"] is None and body["versions"] == []
    assert body["download_url"] == f"http://uploadd/files/{body['id']}/content"
    assert response.header("location") == f"http://uploadd/files/{body['id']}"
    assert app.parts.blobs.path(body["id"]).read_bytes() == data
    assert app.staged() == []


@pytest_twisted.ensureDeferred()
async def test_digests_with_md5_give_every_file_its_md5(tmp_path: Path) -> None:
    """``[storage] digests = sha256, md5``: PUT and multipart form
    bodies record the md5 too."""
    app = harness(tmp_path, settings={("storage", "digests"): "sha256, md5"})
    token = app.user("alice")
    data = b"hello uploadd\n" * 1000
    body = (await put(app, token, "greeting.txt", data)).json()
    assert body["md5"] == hashlib.md5(data).hexdigest()
    form, ctype = multipart({}, "f.txt", data)
    body = (await post_form(app, token, form, ctype)).json()
    assert body["md5"] == hashlib.md5(data).hexdigest()


@pytest_twisted.ensureDeferred()
async def test_multipart_post_takes_the_file_part_and_fields(app: Harness) -> None:
    """POST /files with multipart: the 'file' part is stored, 'filename' renames,
    'parent' makes it a version."""
    token = app.user("alice")
    data = bytes(range(256)) * 300
    first = (await post_form(app, token, *multipart({}, "x.bin", data))).json()
    assert first["filename"] == "x.bin"
    response = await post_form(
        app, token, *multipart({"filename": "v2.bin", "parent": first["id"]}, "x", data)
    )
    assert response.code == 201
    second = response.json()
    assert second["filename"] == "v2.bin"
    assert second["parent"] == first["id"]
    assert second["sha256"] == hashlib.sha256(data).hexdigest()
    shown = (await app.call("GET", f"/files/{first['id']}", headers=auth(token))).json()
    assert [v["id"] for v in shown["versions"]] == [second["id"]]


@pytest_twisted.ensureDeferred()
async def test_multipart_without_a_file_part_is_refused(app: Harness) -> None:
    """A form with no 'file' part gets 400 and leaves nothing behind."""
    token = app.user("alice")
    body = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n'
    response = await post_form(app, token, body, b"multipart/form-data; boundary=b")
    assert response.code == 400
    assert "'file'" in response.json()["detail"]
    assert app.staged() == [] and app.store.files == {}


@pytest_twisted.ensureDeferred()
async def test_a_non_multipart_post_is_415_before_the_body(app: Harness) -> None:
    """POST /files with a JSON body is refused as unsupported media type."""
    token = app.user("alice")
    response = await post_form(app, token, b"{}", b"application/json")
    assert response.code == 415
    assert app.staged() == []


@pytest_twisted.ensureDeferred()
async def test_a_parent_of_another_user_is_refused_and_nothing_kept(
    app: Harness,
) -> None:
    """parent must name a file of the uploader: 422, no file, no staging left."""
    alice, bob = app.user("alice"), app.user("bob")
    theirs = (await put(app, bob, "b.txt", b"bob")).json()
    response = await put(app, alice, "a.txt", b"alice", parent=theirs["id"])
    assert response.code == 422
    assert response.header("content-type") == "application/problem+json"
    assert len(app.store.files) == 1
    assert app.staged() == []
    assert len(list((app.data_dir / "files").rglob("*.*"))) == 0


@pytest_twisted.ensureDeferred()
async def test_listing_is_paginated_and_private(app: Harness) -> None:
    """GET /files pages as {count, next, previous, results}; users see their own."""
    alice, bob = app.user("alice"), app.user("bob")
    for n in range(5):
        await put(app, alice, f"f{n}.txt", b"x" * n)
        app.clock.advance(1)
    await put(app, bob, "bob.txt", b"b")
    page = (
        await app.call("GET", "/files", params={"page_size": "2"}, headers=auth(alice))
    ).json()
    assert page["count"] == 5
    assert [r["filename"] for r in page["results"]] == ["f4.txt", "f3.txt"]
    assert page["previous"] is None
    assert page["next"] == "http://uploadd/files?page=2&page_size=2"
    last = (
        await app.call(
            "GET", "/files", params={"page": "3", "page_size": "2"}, headers=auth(alice)
        )
    ).json()
    assert [r["filename"] for r in last["results"]] == ["f0.txt"]
    assert last["next"] is None
    assert last["previous"] == "http://uploadd/files?page=2&page_size=2"
    theirs = (await app.call("GET", "/files", headers=auth(bob))).json()
    assert [r["filename"] for r in theirs["results"]] == ["bob.txt"]


@pytest_twisted.ensureDeferred()
async def test_listing_searches_names_sorts_and_pages_through_thousands(
    app: Harness,
) -> None:
    """?q= keeps the files whose name contains it, ?sort= orders them by
    name, size or date; the next and previous links keep both. Among 2,500
    files a page is 50 and the last one has no next."""
    token = app.user("alice")
    for n in range(2500):
        name = f"{'report' if n % 2 else 'photo'}-{n:04d}.bin"
        record = FileRecord(
            f"id{n:04d}", 1, name, n, "s" * 64, "m" * 32, "x/y", float(n)
        )
        app.store.files[record.id] = record

    async def listed(**params: str) -> Any:
        response = await app.call("GET", "/files", params=params, headers=auth(token))
        assert response.code == 200, response.body
        return response.json()

    first = await listed(q="REPORT-", sort="name", page_size="50")
    assert first["count"] == 1250
    names = [r["filename"] for r in first["results"]]
    assert names[:2] == ["report-0001.bin", "report-0003.bin"] and len(names) == 50
    assert first["next"] == (
        "http://uploadd/files?page=2&page_size=50&q=REPORT-&sort=name"
    )
    last = await listed(q="REPORT-", sort="name", page_size="50", page="25")
    assert last["results"][-1]["filename"] == "report-2499.bin"
    assert last["next"] is None
    assert last["previous"] == (
        "http://uploadd/files?page=24&page_size=50&q=REPORT-&sort=name"
    )
    biggest = await listed(sort="-size", page_size="3")
    assert [r["size"] for r in biggest["results"]] == [2499, 2498, 2497]
    assert (await listed(sort="created", page_size="1"))["results"][0]["size"] == 0
    newest = await listed(page_size="1")
    assert newest["results"][0]["filename"] == "report-2499.bin"
    assert newest["next"] == "http://uploadd/files?page=2&page_size=1"
    for params in ({"sort": "colour"}, {"q": "x" * 201}):
        response = await app.call("GET", "/files", params=params, headers=auth(token))
        assert response.code == 400
        assert next(iter(params)) in response.json()["detail"]


@pytest_twisted.ensureDeferred()
async def test_bad_paging_arguments_are_400(app: Harness) -> None:
    """page=0 or page_size=abc name the argument in a 400."""
    token = app.user("alice")
    for params in ({"page": "0"}, {"page_size": "abc"}):
        response = await app.call("GET", "/files", params=params, headers=auth(token))
        assert response.code == 400
        assert next(iter(params)) in response.json()["detail"]


@pytest_twisted.ensureDeferred()
async def test_upload_only_creates_but_cannot_read_list_or_delete(
    app: Harness,
) -> None:
    """The upload-only scope stores files and is refused everything else (403)."""
    token = app.user("kiosk", "upload-only")
    created = (await put(app, token, "drop.bin", b"data")).json()
    assert created["size"] == 4
    for method, path in [
        ("GET", "/files"),
        ("GET", f"/files/{created['id']}"),
        ("GET", f"/files/{created['id']}/content"),
        ("DELETE", f"/files/{created['id']}"),
    ]:
        response = await app.call(method, path, headers=auth(token))
        assert response.code == 403, (method, path)
    assert created["id"] in app.store.files


@pytest_twisted.ensureDeferred()
async def test_read_scope_cannot_upload(app: Harness) -> None:
    """A read-only token gets 403 on PUT and nothing is stored."""
    token = app.user("reader", "read")
    response = await put(app, token, "no.txt", b"no")
    assert response.code == 403
    assert app.store.files == {} and app.staged() == []


@pytest_twisted.ensureDeferred()
async def test_other_users_files_are_not_found(app: Harness) -> None:
    """A file of another user answers 404, as if it did not exist."""
    alice, bob = app.user("alice"), app.user("bob")
    created = (await put(app, alice, "a.txt", b"secret")).json()
    for path in [f"/files/{created['id']}", f"/files/{created['id']}/content"]:
        assert (await app.call("GET", path, headers=auth(bob))).code == 404


@pytest_twisted.ensureDeferred()
async def test_admin_sees_every_file(app: Harness) -> None:
    """An admin may read any user's file."""
    alice, root = app.user("alice"), app.user("root", "admin")
    created = (await put(app, alice, "a.txt", b"mine")).json()
    response = await app.call(
        "GET", f"/files/{created['id']}/content", headers=auth(root)
    )
    assert response.body == b"mine"


@pytest_twisted.ensureDeferred()
async def test_content_serves_whole_files_and_single_ranges(app: Harness) -> None:
    """GET content: 200 whole, 206 for a range, 416 past the end."""
    token = app.user("alice")
    data = bytes(range(256)) * 4
    created = (await put(app, token, "we%22ird%20name%C3%A9.bin", data)).json()
    assert created["filename"] == 'we"ird name\u00e9.bin'
    path = f"/files/{created['id']}/content"
    whole = await app.call("GET", path, headers=auth(token))
    assert whole.code == 200
    assert whole.body == data
    assert whole.header("accept-ranges") == "bytes"
    assert whole.header("content-disposition") == (
        'attachment; filename="we_ird name_.bin"; '
        "filename*=UTF-8''we%22ird%20name%C3%A9.bin"
    )
    part = await app.call(
        "GET", path, headers={**auth(token), b"range": [b"bytes=10-19"]}
    )
    assert part.code == 206
    assert part.body == data[10:20]
    assert part.header("content-range") == "bytes 10-19/1024"
    tail = await app.call("GET", path, headers={**auth(token), b"range": [b"bytes=-4"]})
    assert tail.body == data[-4:]
    beyond = await app.call(
        "GET", path, headers={**auth(token), b"range": [b"bytes=5000-"]}
    )
    assert beyond.code == 416
    assert beyond.header("content-range") == "bytes */1024"
    assert beyond.json()["status"] == 416


@pytest_twisted.ensureDeferred()
async def test_content_is_validated_revalidated_and_resumed_conditionally(
    app: Harness,
) -> None:
    """A strong ETag (the sha256) and Last-Modified on every download;
    If-None-Match (weakly compared, and winning over the date) and
    If-Modified-Since give 304; If-Range gives the range only for the same
    version, else the whole body."""
    app.clock.advance(1_700_000_000)  # stored in November 2023
    token = app.user("alice")
    data = bytes(range(256)) * 4
    created = (await put(app, token, "v.bin", data)).json()
    path = f"/files/{created['id']}/content"
    whole = await app.call("GET", path, headers=auth(token))
    etag = whole.header("etag")
    modified = whole.header("last-modified")
    assert etag == f'"{created["sha256"]}"'
    assert modified is not None

    async def ask(**headers: str) -> Any:
        extra = {k.replace("_", "-").encode(): [v.encode()] for k, v in headers.items()}
        return await app.call("GET", path, headers={**auth(token), **extra})

    same = await ask(if_none_match=etag)
    assert (same.code, same.body, same.header("etag")) == (304, b"", etag)
    assert (await ask(if_none_match=f'"other", W/{etag}')).code == 304
    assert (await ask(if_none_match="*")).code == 304
    assert (await ask(if_none_match='"other"')).code == 200
    assert (await ask(if_modified_since=modified)).code == 304
    assert (await ask(if_modified_since="Mon, 01 Jan 2001 00:00:00 GMT")).code == 200
    later = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert (await ask(if_none_match='"other"', if_modified_since=later)).code == 200
    resumed = await ask(range="bytes=10-19", if_range=etag)
    assert (resumed.code, resumed.body) == (206, data[10:20])
    by_date = await ask(range="bytes=10-19", if_range=modified)
    assert (by_date.code, by_date.body) == (206, data[10:20])
    for changed in ('"another-version"', f"W/{etag}", "Mon, 01 Jan 2001 00:00:00 GMT"):
        fresh = await ask(range="bytes=10-19", if_range=changed)
        assert (fresh.code, fresh.body) == (200, data)


def sf(raw: bytes) -> str:
    return ":" + base64.b64encode(raw).decode() + ":"


PROBLEMS = "https://iana.org/assignments/http-problem-types#"


def fields(**given: str) -> dict[bytes, list[bytes]]:
    return {k.replace("_", "-").encode(): [v.encode()] for k, v in given.items()}


@pytest_twisted.ensureDeferred()
async def test_a_put_vouched_for_by_its_digests_is_stored_and_answers_its_own(
    app: Harness,
) -> None:
    """A PUT whose Content-Digest (sha-256) and Repr-Digest (sha-512, read
    from the staged file) match is stored; asked with Want-Repr-Digest the
    201 carries the stored file's Repr-Digest, unasked it does not."""
    token = app.user("alice")
    data = b"vouched for\n" * 100
    response = await app.call(
        "PUT",
        "/files/v.txt",
        data=data,
        headers={
            **auth(token),
            **fields(
                Content_Digest=f"sha-256={sf(hashlib.sha256(data).digest())}",
                Repr_Digest=f"sha-512={sf(hashlib.sha512(data).digest())}",
                Want_Repr_Digest="sha-256=3",
            ),
        },
    )
    assert response.code == 201
    assert response.header("repr-digest") == (
        f"sha-256={sf(hashlib.sha256(data).digest())}"
    )
    assert app.parts.blobs.path(response.json()["id"]).read_bytes() == data
    assert (await put(app, token, "w.txt", data)).header("repr-digest") is None


@pytest_twisted.ensureDeferred()
async def test_a_put_that_is_not_what_its_digest_says_is_not_stored(
    app: Harness,
) -> None:
    """A Content-Digest or Repr-Digest that does not match is a 400 of the
    digest-mismatched-values type naming the digest given; nothing is
    stored, the staging area is empty and no upload is left in flight."""
    token = app.user("alice")
    data = b"the bytes sent"
    other = b"the bytes meant"
    for name, digest in (
        ("Content-Digest", f"sha-256={sf(hashlib.sha256(other).digest())}"),
        ("Repr-Digest", f"sha-512={sf(hashlib.sha512(other).digest())}"),
        ("Repr-Digest", f"sha-256={sf(hashlib.sha256(other).digest())}"),
    ):
        response = await app.call(
            "PUT",
            "/files/x.txt",
            data=data,
            headers={**auth(token), name.encode(): [digest.encode()]},
        )
        assert response.code == 400, name
        problem = response.json()
        assert problem["type"] == PROBLEMS + "digest-mismatched-values"
        [mismatched] = problem["mismatched_digests"]
        assert mismatched["header"] == name
        assert f"{mismatched['algorithm']}={mismatched['provided_digest']}" == digest
        assert app.store.files == {}
        assert app.staged() == []
        assert app.parts.gate.in_flight == 0


@pytest_twisted.ensureDeferred()
async def test_a_put_with_a_broken_digest_field_is_refused_before_its_body(
    app: Harness,
) -> None:
    """A Content-Digest that is no Structured Field is a plain 400 naming
    it; a digest of the wrong length is digest-invalid-values; a field of
    algorithms uploadd does not verify is ignored and the file stored."""
    token = app.user("alice")
    broken = await app.call(
        "PUT",
        "/files/x.txt",
        data=b"x",
        headers={**auth(token), **fields(Content_Digest="sha-256=:AAA")},
    )
    assert broken.code == 400 and broken.json()["type"] == "about:blank"
    assert "Content-Digest" in broken.json()["detail"]
    short = await app.call(
        "PUT",
        "/files/x.txt",
        data=b"x",
        headers={**auth(token), **fields(Repr_Digest=f"sha-512={sf(b'0' * 32)}")},
    )
    assert short.code == 400
    assert short.json()["type"] == PROBLEMS + "digest-invalid-values"
    assert short.json()["invalid_digests"][0]["header"] == "Repr-Digest"
    assert app.store.files == {} and app.staged() == []
    ignored = await app.call(
        "PUT",
        "/files/x.txt",
        data=b"x",
        headers={
            **auth(token),
            **fields(Content_Digest="md5=:AAAAAAAAAAAAAAAAAAAAAA==:"),
        },
    )
    assert ignored.code == 201


@pytest_twisted.ensureDeferred()
async def test_a_download_asked_for_its_digest_answers_the_whole_files(
    app: Harness,
) -> None:
    """GET and HEAD of a file's content with Want-Repr-Digest carry the
    Repr-Digest of the whole file, a range's answer too; unasked, none."""
    token = app.user("alice")
    data = bytes(range(256)) * 4
    created = (await put(app, token, "d.bin", data)).json()
    path = f"/files/{created['id']}/content"
    expected = f"sha-256={sf(hashlib.sha256(data).digest())}"
    want = fields(Want_Repr_Digest="sha-256=10")
    whole = await app.call("GET", path, headers={**auth(token), **want})
    assert (whole.code, whole.header("repr-digest")) == (200, expected)
    part = await app.call(
        "GET", path, headers={**auth(token), **want, **fields(Range="bytes=0-9")}
    )
    assert (part.code, part.header("repr-digest")) == (206, expected)
    head = await app.call("HEAD", path, headers={**auth(token), **want})
    assert head.header("repr-digest") == expected
    plain = await app.call("GET", path, headers=auth(token))
    assert plain.header("repr-digest") is None


@pytest_twisted.ensureDeferred()
async def test_delete_removes_record_and_bytes(app: Harness) -> None:
    """DELETE answers 204; then the file is 404 and its bytes are gone."""
    token = app.user("alice")
    created = (await put(app, token, "a.txt", b"bye")).json()
    path = f"/files/{created['id']}"
    assert (await app.call("DELETE", path, headers=auth(token))).code == 204
    assert (await app.call("GET", path, headers=auth(token))).code == 404
    assert not app.parts.blobs.path(created["id"]).exists()


@pytest_twisted.ensureDeferred()
async def test_no_token_is_401_with_a_problem(app: Harness) -> None:
    """Without a token: 401, WWW-Authenticate, problem+json naming the cause."""
    response = await app.call("PUT", "/files/a.txt", data=b"x")
    assert response.code == 401
    assert response.header("www-authenticate") == 'Bearer realm="uploadd"'
    problem = response.json()
    assert problem["status"] == 401 and "token" in problem["detail"]
    assert app.staged() == []


@pytest_twisted.ensureDeferred()
async def test_jwt_scheme_and_query_token_are_accepted(app: Harness) -> None:
    """Seed clients send 'Authorization: JWT <t>'; plain forms ?access_token=."""
    token = app.user("alice")
    jwt_scheme = await app.call(
        "GET", "/files", headers={b"authorization": [f"JWT {token}".encode()]}
    )
    assert jwt_scheme.code == 200
    query = await app.call("GET", "/files", params={"access_token": token})
    assert query.code == 200


@pytest_twisted.ensureDeferred()
async def test_expired_tokens_are_refused(app: Harness) -> None:
    """A token past its expiry gets 401 'token expired'."""
    token = app.user("alice")
    app.clock.advance(3601)
    response = await app.call("GET", "/files", headers=auth(token))
    assert response.code == 401
    assert response.json()["detail"] == "token expired"


class WatchingStore(MemoryStore):
    """Notes, when a file is recorded, whether its bytes are in place."""

    def __init__(self) -> None:
        super().__init__()
        self.blobs: BlobStore | None = None
        self.seen: list[tuple[bool, list[Path]]] = []

    async def add_file(
        self,
        record: FileRecord,
        events: Sequence[Event] = (),
        renditions: Sequence[Rendition] = (),
    ) -> None:
        assert self.blobs is not None
        staged = sorted(self.blobs.incoming.glob("*"))
        self.seen.append((self.blobs.path(record.id).exists(), staged))
        await super().add_file(record, events, renditions)


class BrokenStore(MemoryStore):
    async def list_files(
        self,
        owner_id: int | None,
        offset: int,
        limit: int,
        search: str = "",
        order: str = "-created",
    ) -> Page:
        raise OSError("/secret/path/db is on fire")


@pytest_twisted.ensureDeferred()
async def test_a_record_is_written_only_after_the_bytes_are_in_place(
    tmp_path: Path,
) -> None:
    """When the store records a file, its bytes are already renamed into their
    final place and nothing of it remains in staging."""
    store = WatchingStore()
    app = harness(tmp_path, store=store)
    store.blobs = app.parts.blobs
    token = app.user("alice")
    assert (await put(app, token, "a.txt", b"durable")).code == 201
    assert store.seen == [(True, [])]


@pytest_twisted.ensureDeferred()
async def test_unexpected_errors_are_500_problems_without_internals(
    tmp_path: Path,
) -> None:
    """A failure inside a handler reaches the client as a 500 with an incident
    id, never a traceback or a path."""
    app = harness(tmp_path, store=BrokenStore())
    token = app.user("alice")
    response = await app.call("GET", "/files", headers=auth(token))
    assert response.code == 500
    problem = response.json()
    assert problem["detail"].startswith("the server failed; incident ")
    assert b"secret" not in response.body and b"Traceback" not in response.body
