"""Tokens, progress, health, metrics and error shapes over StubTreq."""

from __future__ import annotations

import json
import re

import pytest_twisted

from tests.support import PASSWORD, Harness, auth


@pytest_twisted.ensureDeferred()
async def test_token_from_a_form_and_from_json(app: Harness) -> None:
    """POST /auth/token takes urlencoded or JSON credentials and returns a JWT
    that the API accepts."""
    app.user("alice", "read write")
    form = await app.call(
        "POST", "/auth/token", data={"username": "alice", "password": PASSWORD}
    )
    assert form.code == 200
    document = form.json()
    assert document["token_type"] == "Bearer"
    assert document["scope"] == "read write"
    assert document["expires_in"] == 3600
    as_json = await app.call(
        "POST",
        "/auth/token",
        data=json.dumps({"username": "alice", "password": PASSWORD}).encode(),
        headers={b"content-type": [b"application/json"]},
    )
    assert as_json.code == 200
    listing = await app.call("GET", "/files", headers=auth(as_json.json()["token"]))
    assert listing.code == 200


@pytest_twisted.ensureDeferred()
async def test_a_token_can_be_narrowed_but_not_widened(app: Harness) -> None:
    """scope=upload-only narrows; asking for admin without holding it is 403."""
    app.user("alice", "write upload-only")
    narrow = await app.call(
        "POST",
        "/auth/token",
        data={"username": "alice", "password": PASSWORD, "scope": "upload-only"},
    )
    assert narrow.json()["scope"] == "upload-only"
    denied = await app.call("GET", "/files", headers=auth(narrow.json()["token"]))
    assert denied.code == 403
    wider = await app.call(
        "POST",
        "/auth/token",
        data={"username": "alice", "password": PASSWORD, "scope": "admin"},
    )
    assert wider.code == 403


@pytest_twisted.ensureDeferred()
async def test_wrong_credentials_are_one_401(app: Harness) -> None:
    """A wrong password and an unknown user get the same 401 problem."""
    app.user("alice")
    for username, password in [("alice", "nope"), ("mallory", PASSWORD)]:
        response = await app.call(
            "POST", "/auth/token", data={"username": username, "password": password}
        )
        assert response.code == 401
        assert response.json()["detail"] == "wrong username or password"


@pytest_twisted.ensureDeferred()
async def test_malformed_token_requests_are_400(app: Harness) -> None:
    """Bad JSON and missing fields are named in a 400."""
    bad = await app.call(
        "POST",
        "/auth/token",
        data=b"{nope",
        headers={b"content-type": [b"application/json"]},
    )
    assert bad.code == 400 and "JSON" in bad.json()["detail"]
    empty = await app.call("POST", "/auth/token", data={"username": "x"})
    assert empty.code == 400 and "password" in empty.json()["detail"]


@pytest_twisted.ensureDeferred()
async def test_progress_by_header_and_by_query(app: Harness) -> None:
    """X-Progress-ID or ?UploadKey= name an upload; /progress shows its bytes."""
    token = app.user("alice")
    data = b"z" * 5000
    stored = await app.call(
        "PUT",
        "/files/a.bin",
        data=data,
        headers={**auth(token), b"x-progress-id": [b"up-1"]},
    )
    await app.call(
        "PUT",
        "/files/b.bin",
        data=data,
        params={"UploadKey": "up-2"},
        headers=auth(token),
    )
    by_query = await app.call(
        "GET", "/progress", params={"UploadKey": "up-1"}, headers=auth(token)
    )
    assert by_query.code == 200
    progress = by_query.json()
    assert progress["state"] == "done"
    assert progress["received"] == progress["expected"] == 5000
    assert progress["percent"] == 100.0
    assert progress["file_id"] == stored.json()["id"]
    by_path = await app.call("GET", "/progress/up-2", headers=auth(token))
    assert by_path.json()["state"] == "done"


@pytest_twisted.ensureDeferred()
async def test_progress_is_private_and_expires(app: Harness) -> None:
    """Another user's key is 404; a finished entry is gone after progress_ttl."""
    alice, bob = app.user("alice"), app.user("bob")
    await app.call(
        "PUT",
        "/files/a.bin",
        data=b"x",
        headers={**auth(alice), b"x-progress-id": [b"k"]},
    )
    assert (await app.call("GET", "/progress/k", headers=auth(bob))).code == 404
    assert (await app.call("GET", "/progress/k", headers=auth(alice))).code == 200
    app.clock.advance(601)
    assert (await app.call("GET", "/progress/k", headers=auth(alice))).code == 404


@pytest_twisted.ensureDeferred()
async def test_a_malformed_progress_key_is_refused_before_the_body(
    app: Harness,
) -> None:
    """A key with spaces is a 400 at the headers; nothing is stored."""
    token = app.user("alice")
    response = await app.call(
        "PUT",
        "/files/a",
        data=b"x",
        headers={**auth(token), b"x-progress-id": [b"a b"]},
    )
    assert response.code == 400
    assert app.store.files == {}


@pytest_twisted.ensureDeferred()
async def test_health_shows_no_uploads_in_flight_and_metrics_count_a_stored_upload(
    app: Harness,
) -> None:
    """/health is JSON; /metrics is Prometheus text counting uploaded bytes."""
    token = app.user("alice")
    await app.call("PUT", "/files/a.bin", data=b"q" * 1234, headers=auth(token))
    health = await app.call("GET", "/health")
    assert health.json()["status"] == "ok"
    assert health.json()["uploads_in_flight"] == 0
    metrics = await app.call("GET", "/metrics")
    assert metrics.header(
        "content-type",
    ).startswith("text/plain")  # type: ignore[union-attr]
    text = metrics.body.decode()
    assert 'uploadd_upload_received_bytes_total{protocol="put"} 1234.0' in text
    assert 'uploadd_uploads_total{outcome="stored",protocol="put"} 1.0' in text
    assert 'uploadd_upload_duration_seconds_count{protocol="put"} 1.0' in text
    assert "uploadd_upload_bodies_in_flight 0.0" in text


@pytest_twisted.ensureDeferred()
async def test_unknown_routes_and_methods_are_problems(app: Harness) -> None:
    """404 and 405 are problem+json too; 405 names the allowed methods."""
    missing = await app.call("GET", "/nowhere")
    assert missing.code == 404
    assert missing.header("content-type") == "application/problem+json"
    wrong = await app.call("PATCH", "/health")
    assert wrong.code == 405
    assert wrong.json()["status"] == 405
    assert "GET" in (wrong.header("allow") or "")


@pytest_twisted.ensureDeferred()
async def test_oversized_api_bodies_are_413(app: Harness) -> None:
    """Non-upload routes refuse bodies over max_body_size before reading them."""
    response = await app.call("POST", "/auth/token", data=b"x" * (1024 * 1024 + 1))
    assert response.code == 413
    assert response.json()["limit"] == 1024 * 1024


@pytest_twisted.ensureDeferred()
async def test_every_asset_the_page_names_is_served_with_its_type(
    app: Harness,
) -> None:
    """Each script, stylesheet and icon index.html links to is served from
    the package with its type (the favicon too); an unknown one is 404."""
    page = await app.call("GET", "/")
    assert page.code == 200
    named = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.body.decode())
    assert "/static/favicon.svg" in named and "/static/resume.js" in named
    types = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
    for path in named:
        response = await app.call("GET", path)
        assert response.code == 200, path
        kind = types[path.rsplit(".", 1)[1]]
        assert (response.header("content-type") or "").startswith(kind), path
    assert (await app.call("GET", "/static/nothing.js")).code == 404
