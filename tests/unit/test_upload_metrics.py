"""Uploads counted once per upload, by protocol and outcome, whatever
number of requests carried them; their bytes and durations. In memory."""

from __future__ import annotations

import hashlib

import pytest_twisted
from prometheus_client import generate_latest

from tests.metrics import labelled, value
from tests.support import Harness, auth, multipart
from tests.unit.test_storage import chunk
from tests.unit.test_tus import create, h, patch

ENDED = "uploadd_uploads_total"
STARTED = "uploadd_uploads_started_total"


def exposed(app: Harness) -> str:
    return generate_latest(app.parts.metrics.registry).decode()


def ended(text: str) -> dict[tuple[str, str], float]:
    """(protocol, outcome) of every upload that ended, and how many."""
    return {
        (dict(labels)["protocol"], dict(labels)["outcome"]): count
        for labels, count in labelled(text, ENDED).items()
    }


@pytest_twisted.ensureDeferred()
async def test_a_tus_upload_in_two_patches_is_one_upload_stored(
    app: Harness,
) -> None:
    """Created, then filled by two PATCHes 5 s apart: one tus upload begun
    and stored, its 10 bytes received, 5 s from creation to file; the two
    PATCHes are two 204s of one route."""
    token = app.user("alice")
    path = await create(app, token, Upload_Length="10")
    assert (await patch(app, token, path, 0, b"0123")).code == 204
    app.clock.advance(5)
    assert (await patch(app, token, path, 4, b"456789")).code == 204
    text = exposed(app)
    assert value(text, STARTED, protocol="tus") == 1
    assert ended(text) == {("tus", "stored"): 1}
    assert value(text, "uploadd_upload_received_bytes_total", protocol="tus") == 10
    assert value(text, "uploadd_upload_duration_seconds_count", protocol="tus") == 1
    assert value(text, "uploadd_upload_duration_seconds_sum", protocol="tus") == 5
    requests = "uploadd_http_requests_total"
    route = "/uploads/<upload_id>"
    assert value(text, requests, method="PATCH", route=route, status="204") == 2
    assert value(text, requests, method="POST", route="/uploads/", status="201") == 1
    assert value(text, "uploadd_upload_bodies_in_flight") == 0


@pytest_twisted.ensureDeferred()
async def test_a_refused_patch_does_not_end_its_upload(app: Harness) -> None:
    """A PATCH at the wrong offset is refused (409) and the upload goes on:
    nothing has ended until the right PATCH makes the file."""
    token = app.user("alice")
    path = await create(app, token, Upload_Length="4")
    assert (await patch(app, token, path, 2, b"23")).code == 409
    assert ended(exposed(app)) == {}
    assert (await patch(app, token, path, 0, b"0123")).code == 204
    assert ended(exposed(app)) == {("tus", "stored"): 1}


@pytest_twisted.ensureDeferred()
async def test_single_request_uploads_are_counted_by_their_protocol(
    app: Harness,
) -> None:
    """A raw PUT and a multipart POST are each one upload of their own
    protocol, begun and stored."""
    token = app.user("alice")
    put = await app.call("PUT", "/files/a.txt", data=b"abc", headers=auth(token))
    assert put.code == 201
    body, ctype = multipart({}, "b.txt", b"defg")
    posted = await app.call(
        "POST", "/files", data=body, headers={**auth(token), b"content-type": [ctype]}
    )
    assert posted.code == 201
    text = exposed(app)
    assert ended(text) == {("put", "stored"): 1, ("multipart", "stored"): 1}
    assert value(text, STARTED, protocol="put") == 1
    assert value(text, STARTED, protocol="multipart") == 1
    assert value(text, "uploadd_upload_received_bytes_total", protocol="put") == 3
    assert value(text, "uploadd_upload_received_bytes_total", protocol="multipart") == 4


@pytest_twisted.ensureDeferred()
async def test_a_range_upload_of_two_chunks_is_one_upload_stored(
    app: Harness,
) -> None:
    """Two Content-Range chunks and the completion: one range upload."""
    token = app.user("alice")
    data = b"abcdefghij"
    first = await chunk(app, token, "/storage/tmp-upload/", 0, 3, 10, data[:4])
    path = first.json()["url"].removeprefix("http://uploadd")
    await chunk(app, token, path, 4, 9, 10, data[4:])
    assert ended(exposed(app)) == {}
    done = await app.call(
        "POST", path, data={"md5": hashlib.md5(data).hexdigest()}, headers=auth(token)
    )
    assert done.code == 200
    text = exposed(app)
    assert ended(text) == {("range", "stored"): 1}
    assert value(text, STARTED, protocol="range") == 1
    assert value(text, "uploadd_upload_received_bytes_total", protocol="range") == 10


@pytest_twisted.ensureDeferred()
async def test_resumable_uploads_that_end_without_a_file_say_how(
    app: Harness,
) -> None:
    """One upload its client terminates, one left to expire, one tus partial
    upload completed (a part of a later file): each ends once, so."""
    token = app.user("alice")
    terminated = await create(app, token, Upload_Length="4")
    assert (await app.call("DELETE", terminated, headers=h(token))).code == 204
    await create(app, token, Upload_Length="4")
    part = await create(app, token, Upload_Length="2", Upload_Concat="partial")
    assert (await patch(app, token, part, 0, b"ab")).code == 204
    app.clock.advance(app.parts.resumable.expire_after + 1)
    await app.parts.resumable.sweep()
    text = exposed(app)
    assert value(text, STARTED, protocol="tus") == 3
    assert ended(text) == {
        ("tus", "terminated"): 1,
        ("tus", "expired"): 1,
        ("tus", "partial"): 1,
    }
