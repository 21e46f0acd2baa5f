"""tus 1.0.0 over StubTreq and raw channels: every extension, errors, locking."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest_twisted
from twisted.python.failure import Failure

from tests.bucketcore import written
from tests.support import Harness, Reply, auth, harness, now
from tests.unit.test_gate import connect, held_app
from uploadd.auth.tokens import Principal
from uploadd.buckets import ObjectMeta
from uploadd.store.interface import UploadRecord

TUS = {b"tus-resumable": [b"1.0.0"]}
BODY = {b"content-type": [b"application/offset+octet-stream"]}


def h(token: str, **extra: str) -> dict[bytes, list[bytes]]:
    headers = {**auth(token), **TUS}
    for name, value in extra.items():
        headers[name.replace("_", "-").lower().encode()] = [value.encode()]
    return headers


async def create(app: Harness, token: str, **extra: str) -> str:
    response = await app.call("POST", "/uploads/", headers=h(token, **extra))
    assert response.code == 201, response.body
    location = response.header("location")
    assert location is not None
    return location.removeprefix("http://uploadd")


async def patch(
    app: Harness, token: str, path: str, offset: int, data: bytes, **extra: str
) -> Reply:
    return await app.call(
        "PATCH",
        path,
        data=data,
        headers={**h(token, Upload_Offset=str(offset), **extra), **BODY},
    )


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest_twisted.ensureDeferred()
async def test_options_describes_the_server(app: Harness) -> None:
    """OPTIONS lists version, extensions, the size limit and checksums."""
    response = await app.call("OPTIONS", "/uploads/")
    assert response.code == 204
    assert response.header("tus-version") == "1.0.0"
    assert set((response.header("tus-extension") or "").split(",")) == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "termination",
        "concatenation",
    }
    assert response.header("tus-max-size") == str(10 * 1024**3)
    assert response.header("tus-checksum-algorithm") == "sha1,md5,sha256"


@pytest_twisted.ensureDeferred()
async def test_create_patch_head_and_the_finished_file(app: Harness) -> None:
    """An upload created, filled in two PATCHes and HEADed between becomes a
    file with the metadata's name and type and the right hashes."""
    token = app.user("alice")
    data = b"0123456789" * 1000
    path = await create(
        app,
        token,
        Upload_Length=str(len(data)),
        Upload_Metadata=f"filename {b64('notes.txt')},filetype {b64('text/plain')}",
    )
    first = await patch(app, token, path, 0, data[:4000])
    assert first.code == 204
    assert first.header("upload-offset") == "4000"
    assert first.header("upload-expires") is not None
    head = await app.call("HEAD", path, headers=h(token))
    assert head.header("upload-offset") == "4000"
    assert head.header("upload-length") == str(len(data))
    assert head.header("upload-metadata") == (
        f"filename {b64('notes.txt')},filetype {b64('text/plain')}"
    )
    assert head.header("cache-control") == "no-store"
    last = await patch(app, token, path, 4000, data[4000:])
    assert last.header("upload-offset") == str(len(data))
    upload_id = path.rsplit("/", 1)[-1]
    record = app.store.files[upload_id]
    assert record.filename == "notes.txt" and record.content_type == "text/plain"
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert record.md5 == ""  # not computed: [storage] digests is sha256
    assert app.parts.blobs.path(upload_id).read_bytes() == data


@pytest_twisted.ensureDeferred()
async def test_the_request_that_finishes_an_upload_links_its_file(
    app: Harness,
) -> None:
    """The PATCH, creation-with-upload or final concatenation that completes
    an upload answers ``Link: <.../files/{id}>; rel="file"``; a PATCH that
    leaves bytes to come does not."""
    token = app.user("alice")
    path = await create(app, token, Upload_Length="6")
    upload_id = path.rsplit("/", 1)[-1]
    first = await patch(app, token, path, 0, b"abc")
    assert first.header("link") is None
    last = await patch(app, token, path, 3, b"def")
    assert last.header("link") == f'<http://uploadd/files/{upload_id}>; rel="file"'
    whole = await app.call(
        "POST",
        "/uploads/",
        data=b"hello",
        headers={**h(token, Upload_Length="5"), **BODY},
    )
    whole_id = (whole.header("location") or "").rsplit("/", 1)[-1]
    assert whole.header("link") == f'<http://uploadd/files/{whole_id}>; rel="file"'
    assert app.store.files[whole_id].size == 5
    part = await create(app, token, Upload_Length="2", Upload_Concat="partial")
    assert (await patch(app, token, part, 0, b"xy")).header("link") is None
    final = await app.call(
        "POST", "/uploads/", headers=h(token, Upload_Concat=f"final;{part}")
    )
    final_id = (final.header("location") or "").rsplit("/", 1)[-1]
    assert final.header("link") == f'<http://uploadd/files/{final_id}>; rel="file"'


@pytest_twisted.ensureDeferred()
async def test_each_protocol_mistake_is_refused_with_its_own_status(
    app: Harness,
) -> None:
    """412 for another tus version, 415 for another body type, 409 for a wrong
    offset, 413 over the limit, 404 for someone else's upload."""
    token, other = app.user("alice"), app.user("bob")
    path = await create(app, token, Upload_Length="10")
    wrong_version = await app.call(
        "HEAD", path, headers={**auth(token), b"tus-resumable": [b"0.2.2"]}
    )
    assert wrong_version.code == 412
    assert wrong_version.header("tus-version") == "1.0.0"
    wrong_type = await app.call(
        "PATCH",
        path,
        data=b"x",
        headers={**h(token, Upload_Offset="0"), b"content-type": [b"text/plain"]},
    )
    assert wrong_type.code == 415
    wrong_offset = await patch(app, token, path, 3, b"abc")
    assert wrong_offset.code == 409
    assert wrong_offset.header("upload-offset") == "0"
    too_long = await patch(app, token, path, 0, b"x" * 11)
    assert too_long.code == 413
    huge = await app.call(
        "POST", "/uploads/", headers=h(token, Upload_Length=str(11 * 1024**3))
    )
    assert huge.code == 413
    theirs = await app.call("HEAD", path, headers=h(other))
    assert theirs.code == 404
    no_length = await app.call("POST", "/uploads/", headers=h(token))
    assert no_length.code == 400


@pytest_twisted.ensureDeferred()
async def test_a_post_with_a_body_creates_and_fills_an_upload(app: Harness) -> None:
    """POST with a body creates and fills in one request."""
    token = app.user("alice")
    response = await app.call(
        "POST",
        "/uploads/",
        data=b"hello",
        headers={**h(token, Upload_Length="10"), **BODY},
    )
    assert response.code == 201
    assert response.header("upload-offset") == "5"


@pytest_twisted.ensureDeferred()
async def test_a_deferred_length_is_stated_by_a_later_patch(app: Harness) -> None:
    """Upload-Defer-Length: 1, then a PATCH that states the length."""
    token = app.user("alice")
    path = await create(app, token, Upload_Defer_Length="1")
    head = await app.call("HEAD", path, headers=h(token))
    assert head.header("upload-defer-length") == "1"
    assert (await patch(app, token, path, 0, b"abc")).code == 204
    done = await patch(app, token, path, 3, b"def", Upload_Length="6")
    assert done.header("upload-offset") == "6"
    assert app.store.files[path.rsplit("/", 1)[-1]].size == 6


@pytest_twisted.ensureDeferred()
async def test_a_body_is_kept_only_when_it_matches_its_checksum(app: Harness) -> None:
    """A matching Upload-Checksum is taken; a wrong one is 460 and the chunk
    discarded; an unknown algorithm is 400."""
    token = app.user("alice")
    path = await create(app, token, Upload_Length="6")
    good = base64.b64encode(hashlib.sha1(b"abc").digest()).decode()
    ok = await patch(app, token, path, 0, b"abc", Upload_Checksum=f"sha1 {good}")
    assert ok.code == 204
    bad = base64.b64encode(hashlib.md5(b"nope").digest()).decode()
    wrong = await patch(app, token, path, 3, b"def", Upload_Checksum=f"md5 {bad}")
    assert wrong.code == 460
    head = await app.call("HEAD", path, headers=h(token))
    assert head.header("upload-offset") == "3"
    unknown = await patch(app, token, path, 3, b"def", Upload_Checksum="crc32 AAAA")
    assert unknown.code == 400
    sha = base64.b64encode(hashlib.sha256(b"def").digest()).decode()
    done = await patch(app, token, path, 3, b"def", Upload_Checksum=f"sha256 {sha}")
    assert done.header("upload-offset") == "6"
    record = app.store.files[path.rsplit("/", 1)[-1]]
    assert record.sha256 == hashlib.sha256(b"abcdef").hexdigest()


def sf(raw: bytes) -> str:
    return ":" + base64.b64encode(raw).decode() + ":"


MISMATCHED = "https://iana.org/assignments/http-problem-types#digest-mismatched-values"


@pytest_twisted.ensureDeferred()
async def test_rfc_9530_digests_vouch_for_a_body_and_for_the_whole_file(
    app: Harness,
) -> None:
    """A Repr-Digest sent at creation is kept (not shown as metadata) and
    checked by the PATCH that completes the upload: a wrong file is the
    digest-mismatched-values problem and that PATCH's bytes are discarded;
    a wrong Content-Digest discards its body the same way; the completing
    PATCH asked with Want-Repr-Digest answers the file's Repr-Digest."""
    token = app.user("alice", ttl=3 * 24 * 3600)
    whole = hashlib.sha256(b"abcdef").digest()
    path = await create(
        app,
        token,
        Upload_Length="6",
        Upload_Metadata=f"filename {b64('six.txt')}",
        Repr_Digest=f"sha-256={sf(whole)}",
    )
    head = await app.call("HEAD", path, headers=h(token))
    assert head.header("upload-metadata") == f"filename {b64('six.txt')}"
    listing = (await app.call("GET", "/uploads/", headers=auth(token))).json()
    assert listing["results"][0]["metadata"] == {"filename": "six.txt"}
    first = await patch(
        app,
        token,
        path,
        0,
        b"abc",
        Content_Digest=f"sha-512={sf(hashlib.sha512(b'abc').digest())}",
    )
    assert first.code == 204
    wrong_file = await patch(app, token, path, 3, b"xyz")
    assert wrong_file.code == 400
    assert wrong_file.header("content-type") == "application/problem+json"
    assert wrong_file.json()["type"] == MISMATCHED
    assert wrong_file.json()["mismatched_digests"] == [
        {"algorithm": "sha-256", "provided_digest": sf(whole), "header": "Repr-Digest"}
    ]
    assert (await app.call("HEAD", path, headers=h(token))).header(
        "upload-offset"
    ) == "3"
    wrong_body = await patch(
        app,
        token,
        path,
        3,
        b"def",
        Content_Digest=f"sha-256={sf(hashlib.sha256(b'deX').digest())}",
    )
    assert wrong_body.code == 400
    assert wrong_body.json()["mismatched_digests"][0]["header"] == "Content-Digest"
    assert (await app.call("HEAD", path, headers=h(token))).header(
        "upload-offset"
    ) == "3"
    assert app.parts.blobs.upload_path(path.rsplit("/", 1)[-1]).read_bytes() == b"abc"
    done = await patch(
        app, token, path, 3, b"def", Want_Repr_Digest="sha-512=10, sha-256=5"
    )
    assert done.code == 204
    assert done.header("repr-digest") == f"sha-256={sf(whole)}"
    assert app.store.files[path.rsplit("/", 1)[-1]].sha256 == whole.hex()


@pytest_twisted.ensureDeferred()
async def test_a_creation_that_completes_answers_its_digest_when_asked(
    app: Harness,
) -> None:
    """POST with the whole body and Want-Repr-Digest answers Repr-Digest;
    a wrong Repr-Digest leaves no upload behind; a key of the server's own
    in Upload-Metadata, or Upload-Checksum beside Content-Digest, is a 400."""
    token = app.user("alice")
    made = await app.call(
        "POST",
        "/uploads/",
        data=b"hello",
        headers={**h(token, Upload_Length="5", Want_Repr_Digest="sha-256=1"), **BODY},
    )
    assert made.code == 201
    digest = hashlib.sha256(b"hello").digest()
    assert made.header("repr-digest") == f"sha-256={sf(digest)}"
    plain = await app.call(
        "POST",
        "/uploads/",
        data=b"hello",
        headers={**h(token, Upload_Length="5"), **BODY},
    )
    assert plain.header("repr-digest") is None
    wrong = await app.call(
        "POST",
        "/uploads/",
        data=b"hellO",
        headers={
            **h(token, Upload_Length="5", Repr_Digest=f"sha-256={sf(digest)}"),
            **BODY,
        },
    )
    assert wrong.code == 400 and wrong.json()["type"] == MISMATCHED
    assert len(app.store.files) == 2
    assert [r.state for r in app.store.uploads.values()] == ["complete", "complete"]
    reserved = await app.call(
        "POST",
        "/uploads/",
        headers=h(token, Upload_Length="1", Upload_Metadata="_repr-digest"),
    )
    assert reserved.code == 400
    sha = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    both = await app.call(
        "POST",
        "/uploads/",
        data=b"x",
        headers={
            **h(
                token,
                Upload_Length="1",
                Upload_Checksum=f"sha256 {sha}",
                Content_Digest=f"sha-256=:{sha}:",
            ),
            **BODY,
        },
    )
    assert both.code == 400


@pytest_twisted.ensureDeferred()
async def test_expiry_answers_410_and_the_sweeper_frees_the_bytes(
    app: Harness,
) -> None:
    """Past Upload-Expires the upload is gone (410) and its file removed."""
    token = app.user("alice", ttl=3 * 24 * 3600)
    path = await create(app, token, Upload_Length="10")
    await patch(app, token, path, 0, b"abc")
    upload_id = path.rsplit("/", 1)[-1]
    data_file = app.parts.blobs.upload_path(upload_id)
    assert data_file.exists()
    app.clock.advance(24 * 3600 + 1)
    assert (await app.call("HEAD", path, headers=h(token))).code == 410
    assert now(app.parts.resumable.sweep()) == 1
    assert not data_file.exists()
    assert (await patch(app, token, path, 3, b"def")).code == 410


@pytest_twisted.ensureDeferred()
async def test_delete_ends_an_upload_and_frees_its_bytes(app: Harness) -> None:
    """DELETE ends an upload: 204, then 404, and its bytes are gone."""
    token = app.user("alice")
    path = await create(app, token, Upload_Length="10")
    response = await app.call("DELETE", path, headers=h(token))
    assert response.code == 204
    assert (await app.call("HEAD", path, headers=h(token))).code == 404
    assert not app.parts.blobs.upload_path(path.rsplit("/", 1)[-1]).exists()


@pytest_twisted.ensureDeferred()
async def test_partial_uploads_join_into_one_file_that_takes_no_patch(
    app: Harness,
) -> None:
    """Two partial uploads and a final one make one file of both; the final
    takes no PATCH and HEAD names its parts."""
    token = app.user("alice")
    paths = []
    for piece in (b"first half, ", b"second half"):
        path = await create(
            app, token, Upload_Length=str(len(piece)), Upload_Concat="partial"
        )
        await patch(app, token, path, 0, piece)
        paths.append(path)
    final = await create(
        app,
        token,
        Upload_Concat="final;" + " ".join(paths),
        Upload_Metadata=f"filename {b64('joined.txt')}",
    )
    final_id = final.rsplit("/", 1)[-1]
    record = app.store.files[final_id]
    assert record.filename == "joined.txt"
    assert app.parts.blobs.path(final_id).read_bytes() == b"first half, second half"
    assert record.sha256 == hashlib.sha256(b"first half, second half").hexdigest()
    assert (await patch(app, token, final, 0, b"x")).code == 403
    head = await app.call("HEAD", final, headers=h(token))
    assert (head.header("upload-concat") or "").startswith("final;http://uploadd/")
    assert head.header("upload-offset") == str(len(b"first half, second half"))


@pytest_twisted.ensureDeferred()
async def test_a_final_upload_is_checked_against_its_repr_digest_once_joined(
    app: Harness,
) -> None:
    """A final upload whose joined file is not what its Repr-Digest says is
    the digest-mismatched-values problem: no file, no final upload, and
    the parts are still there to join; joined right (and asked) it answers
    the file's Repr-Digest."""
    token = app.user("alice")
    paths = []
    for piece in (b"first, ", b"second"):
        path = await create(
            app, token, Upload_Length=str(len(piece)), Upload_Concat="partial"
        )
        await patch(app, token, path, 0, piece)
        paths.append(path)
    joined = "final;" + " ".join(paths)
    wrong = await app.call(
        "POST",
        "/uploads/",
        headers=h(
            token,
            Upload_Concat=joined,
            Repr_Digest=f"sha-512={sf(hashlib.sha512(b'second, first').digest())}",
        ),
    )
    assert wrong.code == 400 and wrong.json()["type"] == MISMATCHED
    assert app.store.files == {}
    assert not [r for r in app.store.uploads.values() if r.concat == "final"]
    right = hashlib.sha512(b"first, second").digest()
    final = await app.call(
        "POST",
        "/uploads/",
        headers=h(
            token,
            Upload_Concat=joined,
            Repr_Digest=f"sha-512={sf(right)}",
            Want_Repr_Digest="sha-256=1",
        ),
    )
    assert final.code == 201
    sha = hashlib.sha256(b"first, second").digest()
    assert final.header("repr-digest") == f"sha-256={sf(sha)}"


@pytest_twisted.ensureDeferred()
async def test_a_post_overridden_to_patch_appends(app: Harness) -> None:
    """POST with X-HTTP-Method-Override: PATCH is a PATCH."""
    token = app.user("alice")
    path = await create(app, token, Upload_Length="3")
    response = await app.call(
        "POST",
        path,
        data=b"abc",
        headers={**h(token, Upload_Offset="0", X_HTTP_Method_Override="PATCH"), **BODY},
    )
    assert response.code == 204
    assert response.header("upload-offset") == "3"


@pytest_twisted.ensureDeferred()
async def test_cors_preflight_and_exposed_headers(tmp_path: Path) -> None:
    """With an allowed origin, preflights pass with tus headers and the
    integrity fields, and a page may read them in answers."""
    app = harness(tmp_path, settings={("http", "cors_origins"): "https://app.test"})
    token = app.user("alice")
    origin = {b"origin": [b"https://app.test"]}
    preflight = await app.call(
        "OPTIONS",
        "/uploads/",
        headers={**origin, b"access-control-request-method": [b"PATCH"]},
    )
    assert preflight.code == 204
    assert preflight.header("access-control-allow-origin") == "https://app.test"
    allowed = (preflight.header("access-control-allow-headers") or "").split(", ")
    assert {
        "Upload-Offset",
        "Content-Digest",
        "Repr-Digest",
        "Want-Repr-Digest",
        "Want-Content-Digest",
    } <= set(allowed)
    created = await app.call(
        "POST", "/uploads/", headers={**h(token, Upload_Length="1"), **origin}
    )
    exposed = (created.header("access-control-expose-headers") or "").split(", ")
    assert {"Location", "Repr-Digest", "Content-Digest"} <= set(exposed)
    stranger = await app.call(
        "OPTIONS",
        "/files",
        headers={
            b"origin": [b"https://evil.test"],
            b"access-control-request-method": [b"PUT"],
        },
    )
    assert stranger.header("access-control-allow-origin") is None


def test_a_second_patch_while_one_runs_is_423(tmp_path: Path) -> None:
    """Two PATCHes on one upload never interleave: the second is Locked."""
    app, runner = held_app(tmp_path)
    token = app.user("alice")
    created = connect(app)
    created.send(
        b"POST /uploads/ HTTP/1.1\r\nHost: u\r\nTus-Resumable: 1.0.0\r\n"
        + f"Authorization: Bearer {token}\r\nUpload-Length: 100\r\n\r\n".encode()
    )
    while runner.release():
        pass
    location = next(
        line.split(b": ", 1)[1]
        for line in created.output().split(b"\r\n")
        if line.lower().startswith(b"location")
    )
    path = location.split(b"uploadd", 1)[-1].decode()
    if not path.startswith("/"):
        path = "/" + path.split("/", 3)[-1]

    def patch_head(offset: int) -> bytes:
        return (
            f"PATCH {path} HTTP/1.1\r\nHost: u\r\nTus-Resumable: 1.0.0\r\n"
            f"Authorization: Bearer {token}\r\nUpload-Offset: {offset}\r\n"
            "Content-Type: application/offset+octet-stream\r\n"
            "Content-Length: 50\r\n\r\n"
        ).encode()

    first = connect(app)
    first.send(patch_head(0) + b"a" * 20)
    second = connect(app)
    second.send(patch_head(0))
    assert second.output().startswith(b"HTTP/1.1 423 ")
    first.protocol.connectionLost(Failure(ConnectionError("gone")))
    while runner.release():
        pass
    upload = app.store.uploads[path.rsplit("/", 1)[-1]]
    assert upload.received == 20  # the interrupted PATCH kept what it wrote
    third = connect(app)
    third.send(patch_head(20) + b"b" * 50)
    while runner.release():
        pass
    assert b"HTTP/1.1 204 " in third.output()


@pytest_twisted.ensureDeferred()
async def test_get_lists_the_owners_unfinished_uploads_for_another_browser(
    app: Harness,
) -> None:
    """GET /uploads/ lists the caller's unfinished tus uploads with their
    name, length, server offset, the client's fingerprint, dates and URL:
    open ones and complete parts not yet joined; finished, expired and
    other users' uploads are not listed; a read-only token is refused."""
    token, bob = app.user("alice", ttl=3 * 24 * 3600), app.user("bob")
    reader = app.user("carol", "read")
    metadata = f"filename {b64('film.mkv')},fingerprint {b64('v1:10:abc')}"
    path = await create(app, token, Upload_Length="10", Upload_Metadata=metadata)
    await patch(app, token, path, 0, b"abcd")
    app.clock.advance(1)
    part = await create(app, token, Upload_Length="3", Upload_Concat="partial")
    await patch(app, token, part, 0, b"xyz")
    done = await create(app, token, Upload_Length="2")
    await patch(app, token, done, 0, b"ok")
    await create(app, bob, Upload_Length="5")

    response = await app.call("GET", "/uploads/", headers=auth(token))
    assert response.code == 200
    assert response.header("cache-control") == "no-store"
    listing = response.json()
    assert listing["count"] == 2
    first, second = listing["results"]
    assert first["url"] == f"http://uploadd{path}"
    assert first["id"] == path.rsplit("/", 1)[-1]
    assert (first["name"], first["size"], first["offset"]) == ("film.mkv", 10, 4)
    assert first["fingerprint"] == "v1:10:abc"
    assert first["metadata"] == {"filename": "film.mkv", "fingerprint": "v1:10:abc"}
    assert first["concat"] is None and first["complete"] is False
    assert first["created_at"].endswith("Z") and first["expires_at"].endswith("Z")
    assert second["url"] == f"http://uploadd{part}"
    assert (second["concat"], second["complete"], second["offset"]) == (
        "partial",
        True,
        3,
    )
    assert (await app.call("GET", "/uploads/", headers=auth(reader))).code == 403
    assert (await app.call("GET", "/uploads/")).code == 401
    # Past its expiry an open upload is no longer offered.
    app.clock.advance(24 * 3600 + 1)
    after = (await app.call("GET", "/uploads/", headers=auth(token))).json()
    assert [r["url"] for r in after["results"]] == [f"http://uploadd{part}"]


@pytest_twisted.ensureDeferred()
async def test_s3_multipart_uploads_are_listed_without_their_parts(
    app: Harness,
) -> None:
    """An S3 multipart upload is one of its owner's unfinished uploads,
    named after its key, whatever parts it has so far; the parts are not
    listed on their own."""
    token = app.user("alice")
    alice = Principal(1, "alice", frozenset({"write"}))
    await app.parts.buckets.create(alice, "photos")
    multipart = app.parts.multipart
    made = await multipart.create(alice, "photos", "2024/cat.jpg", ObjectMeta())
    body = await multipart.begin_part(
        alice, "photos", "2024/cat.jpg", made.upload_id, 1, 3
    )
    await body.land(alice, written(body.target, b"cat"))
    listing = (await app.call("GET", "/uploads/", headers=auth(token))).json()
    assert listing["count"] == 1
    (shown,) = listing["results"]
    assert (shown["id"], shown["protocol"], shown["name"]) == (
        made.upload_id,
        "s3",
        "cat.jpg",
    )
    assert (shown["metadata"]["bucket"], shown["metadata"]["key"]) == (
        "photos",
        "2024/cat.jpg",
    )


@pytest_twisted.ensureDeferred()
async def test_joined_parts_are_no_longer_listed_and_uploads_held_elsewhere_are(
    app: Harness,
) -> None:
    """Once a final upload joins its parts they leave the list (they name
    the file); an upload another instance holds is listed with this
    instance's URL, which forwards to the holder."""
    token = app.user("alice")
    paths = []
    for piece in (b"one ", b"two"):
        path = await create(
            app, token, Upload_Length=str(len(piece)), Upload_Concat="partial"
        )
        await patch(app, token, path, 0, piece)
        paths.append(path)
    listed = (await app.call("GET", "/uploads/", headers=auth(token))).json()
    assert listed["count"] == 2
    final = await create(app, token, Upload_Concat="final;" + " ".join(paths))
    file_id = final.rsplit("/", 1)[-1]
    joined = app.store.uploads[paths[0].rsplit("/", 1)[-1]]
    assert joined.file_id == file_id
    assert (await app.call("GET", "/uploads/", headers=auth(token))).json() == {
        "count": 0,
        "results": [],
    }
    elsewhere = UploadRecord(
        "held-by-b",
        1,
        "tus",
        100,
        app.clock.seconds(),
        app.clock.seconds() + 60,
        received=40,
        metadata={"filename": "big.iso"},
        holder="uploadd-b",
    )
    now(app.store.add_upload(elsewhere))
    listing = (await app.call("GET", "/uploads/", headers=auth(token))).json()
    assert [(r["url"], r["offset"]) for r in listing["results"]] == [
        ("http://uploadd/uploads/held-by-b", 40)
    ]


@pytest_twisted.ensureDeferred()
async def test_parts_under_the_limit_do_not_join_into_a_file_over_it(
    tmp_path: Path,
) -> None:
    """Each part fits the upload limit but together they do not: the final
    upload is refused 413 and no file is made."""
    app = harness(tmp_path, settings={("http", "max_upload_size"): "20"})
    token = app.user("alice")
    paths = []
    for piece in (b"x" * 12, b"y" * 12):
        path = await create(
            app, token, Upload_Length=str(len(piece)), Upload_Concat="partial"
        )
        await patch(app, token, path, 0, piece)
        paths.append(path)
    response = await app.call(
        "POST",
        "/uploads/",
        headers=h(token, Upload_Concat="final;" + " ".join(paths)),
    )
    assert response.code == 413, response.body
    assert app.store.files == {}
