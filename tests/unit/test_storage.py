"""Seed 003's Content-Range chunk API over StubTreq."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest_twisted
from twisted.internet.defer import Deferred

from tests.support import Harness, Reply, auth, multipart
from tests.unit.test_gate import connect, held_app
from uploadd.auth.tokens import Principal
from uploadd.store.interface import UploadRecord


async def chunk(
    app: Harness, token: str, path: str, first: int, last: int, total: int, data: bytes
) -> Reply:
    body, ctype = multipart({"filename": "big.bin"}, "big.bin", data)
    return await app.call(
        "PUT",
        path,
        data=body,
        headers={
            **auth(token),
            b"content-type": [ctype],
            b"content-range": [f"bytes {first}-{last}/{total}".encode()],
        },
    )


@pytest_twisted.ensureDeferred()
async def test_chunks_in_any_order_then_complete_with_md5(app: Harness) -> None:
    """Chunks sent last-first all land; completion with the right md5 makes a
    file whose hashes match the whole."""
    token = app.user("alice")
    data = os.urandom(30_000)
    first = await chunk(
        app, token, "/storage/tmp-upload/", 20_000, 29_999, 30_000, data[20_000:]
    )
    assert first.code == 200
    upload = first.json()
    assert upload["offset"] == 0 and upload["status"] == 1
    path = upload["url"].removeprefix("http://uploadd")
    await chunk(app, token, path, 0, 9_999, 30_000, data[:10_000])
    early = await app.call("POST", path, headers=auth(token))
    assert early.code == 400
    assert early.json()["missing"] == [[10_000, 20_000]]
    middle = await chunk(app, token, path, 10_000, 19_999, 30_000, data[10_000:20_000])
    assert middle.json()["offset"] == 30_000
    done = await app.call(
        "POST", path, data={"md5": hashlib.md5(data).hexdigest()}, headers=auth(token)
    )
    assert done.code == 200
    assert done.json()["status"] == 2
    assert done.json()["sha256"] == hashlib.sha256(data).hexdigest()
    stored = app.store.files[upload["id"]]
    assert stored.filename == "big.bin"
    assert app.parts.blobs.path(stored.id).read_bytes() == data


@pytest_twisted.ensureDeferred()
async def test_a_wrong_md5_names_both_and_keeps_the_upload(app: Harness) -> None:
    """A mismatching md5 is a 400 naming both sums; a retry with the right one
    completes."""
    token = app.user("alice")
    data = b"abcdefghij"
    path = (await chunk(app, token, "/storage/tmp-upload/", 0, 9, 10, data)).json()[
        "url"
    ]
    path = path.removeprefix("http://uploadd")
    wrong = await app.call("POST", path, data={"md5": "0" * 32}, headers=auth(token))
    assert wrong.code == 400
    assert wrong.json()["given"] == "0" * 32
    assert wrong.json()["actual"] == hashlib.md5(data).hexdigest()
    right = await app.call(
        "POST", path, data={"md5": hashlib.md5(data).hexdigest()}, headers=auth(token)
    )
    assert right.code == 200 and right.json()["status"] == 2


@pytest_twisted.ensureDeferred()
async def test_one_based_ranges_from_seed_clients(app: Harness) -> None:
    """'bytes 1-N/N' on a first chunk means the whole file, counted from 1."""
    token = app.user("alice")
    data = b"x" * 500
    response = await chunk(app, token, "/storage/tmp-upload/", 1, 500, 500, data)
    assert response.json()["offset"] == 500
    path = response.json()["url"].removeprefix("http://uploadd")
    done = await app.call("POST", path, headers=auth(token))
    assert done.json()["size"] == 500


@pytest_twisted.ensureDeferred()
async def test_single_request_post_with_md5_and_a_parent(app: Harness) -> None:
    """POST /storage/tmp-upload/ with the whole file and its md5 completes at
    once; 'parent' makes it a version, listed under /storage/files/."""
    token = app.user("alice")
    data = b"version one"
    body, ctype = multipart({"md5": hashlib.md5(data).hexdigest()}, "doc.txt", data)
    first = await app.call(
        "POST",
        "/storage/tmp-upload/",
        data=body,
        headers={**auth(token), b"content-type": [ctype]},
    )
    assert first.code == 200 and first.json()["status"] == 2
    data2 = b"version two"
    body, ctype = multipart(
        {"md5": hashlib.md5(data2).hexdigest(), "parent": first.json()["id"]},
        "doc.txt",
        data2,
    )
    second = await app.call(
        "POST",
        "/storage/tmp-upload/",
        data=body,
        headers={**auth(token), b"content-type": [ctype]},
    )
    assert second.json()["parent"] == first.json()["id"]
    listing = (await app.call("GET", "/storage/files/", headers=auth(token))).json()
    by_id = {entry["id"]: entry for entry in listing["results"]}
    assert [v["id"] for v in by_id[first.json()["id"]]["versions"]] == [
        second.json()["id"]
    ]
    download = await app.call(
        "GET",
        f"/storage/download/{second.json()['id']}/",
        headers={**auth(token), b"range": [b"bytes=8-"]},
    )
    assert download.code == 206 and download.body == b"two"


@pytest_twisted.ensureDeferred()
async def test_bad_chunks_are_refused(app: Harness) -> None:
    """No Content-Range, a size that disagrees with it, a total that changes:
    each a 400 that covers nothing."""
    token = app.user("alice")
    body, ctype = multipart({}, "a.bin", b"abc")
    missing = await app.call(
        "PUT",
        "/storage/tmp-upload/",
        data=body,
        headers={**auth(token), b"content-type": [ctype]},
    )
    assert missing.code == 400 and "Content-Range" in missing.json()["detail"]
    created = await chunk(app, token, "/storage/tmp-upload/", 0, 2, 10, b"abc")
    path = created.json()["url"].removeprefix("http://uploadd")
    short = await chunk(app, token, path, 3, 6, 10, b"de")
    assert short.code == 400
    assert "Content-Range" in short.json()["detail"]
    other_total = await chunk(app, token, path, 3, 4, 11, b"de")
    assert other_total.code == 400
    state = app.store.uploads[created.json()["id"]]
    assert state.ranges == ((0, 3),)


def test_parallel_chunks_may_not_overlap(tmp_path: Path) -> None:
    """While a chunk streams, another chunk overlapping it is 409; a disjoint
    one proceeds at the same time."""
    app, runner = held_app(tmp_path)
    token = app.user("alice")
    made: list[UploadRecord] = []
    Deferred.fromCoroutine(
        app.parts.resumable.create(
            Principal(1, "alice", frozenset({"write"})), "range", 300, {}
        )
    ).addCallback(made.append)
    runner.release()
    (record,) = made

    def put(first: int, last: int) -> bytes:
        return (
            f"PUT /storage/tmp-upload/{record.id}/ HTTP/1.1\r\nHost: u\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Range: bytes {first}-{last}/300\r\n"
            "Content-Type: application/octet-stream\r\n"
            f"Content-Length: {last - first + 1}\r\n\r\n"
        ).encode()

    first = connect(app)
    first.send(put(0, 99) + b"a" * 50)
    overlapping = connect(app)
    overlapping.send(put(50, 149))
    assert overlapping.output().startswith(b"HTTP/1.1 409 ")
    disjoint = connect(app)
    disjoint.send(put(100, 199) + b"b" * 100)
    first.send(b"a" * 50)
    while runner.release():
        pass
    assert b"HTTP/1.1 200 OK" in first.output()
    assert b"HTTP/1.1 200 OK" in disjoint.output()
    assert app.store.uploads[record.id].ranges == ((0, 200),)
