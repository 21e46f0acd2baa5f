"""Webhooks: the API, signed deliveries, retries, dead letters, idempotence."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import attrs
import pytest_twisted

from tests.support import Harness, auth, harness
from uploadd.events.bus import InProcessBus
from uploadd.workers.webhooks import signature, without_credentials


@attrs.define
class Receiver:
    """Records POSTs; answers with the next status in ``statuses`` (then 200)."""

    statuses: dict[str, list[int]] = attrs.field(factory=dict)
    got: list[tuple[str, bytes, dict[str, str]]] = attrs.field(factory=list)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.got.append((url, body, headers))
        queue = self.statuses.get(url, [])
        return queue.pop(0) if queue else 200


async def hook(
    app: Harness, token: str, url: str, events: str = "file.*"
) -> dict[str, str]:
    response = await app.call(
        "POST", "/webhooks", data={"url": url, "events": events}, headers=auth(token)
    )
    assert response.code == 201
    document: dict[str, str] = response.json()
    return document


def settle(app: Harness, seconds: float = 0) -> None:
    for _ in range(5):
        app.clock.advance(0)
    if seconds:
        app.clock.advance(seconds)
        for _ in range(5):
            app.clock.advance(0)


@pytest_twisted.ensureDeferred()
async def test_webhooks_are_created_listed_and_deleted(tmp_path: Path) -> None:
    """The secret is shown once (Standard Webhooks' whsec_ form of a 32-byte
    key); listing hides it; a bad URL is 400."""
    app = harness(tmp_path)
    token = app.user("alice")
    created = await hook(app, token, "http://example.test/in")
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32
    listed = (await app.call("GET", "/webhooks", headers=auth(token))).json()
    assert [h["id"] for h in listed["results"]] == [created["id"]]
    assert "secret" not in listed["results"][0]
    bad = await app.call(
        "POST", "/webhooks", data={"url": "ftp://x/y"}, headers=auth(token)
    )
    assert bad.code == 400
    other = app.user("bob")
    assert (
        await app.call("DELETE", f"/webhooks/{created['id']}", headers=auth(other))
    ).code == 404
    assert (
        await app.call("DELETE", f"/webhooks/{created['id']}", headers=auth(token))
    ).code == 204


def verify(
    secret: str, headers: dict[str, str], body: bytes, now: float, seen: set[str]
) -> bool:
    """A receiver's check, as the README tells it (Standard Webhooks): the
    timestamp within 5 minutes, the id not seen before, and one ``v1,``
    signature the HMAC-SHA256 of ``id.timestamp.body`` under the key.
    Header names are case-insensitive."""
    headers = {name.lower(): value for name, value in headers.items()}
    webhook_id = headers["webhook-id"]
    stamp = headers["webhook-timestamp"]
    if abs(now - int(stamp)) > 300 or webhook_id in seen:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    for entry in headers["webhook-signature"].split():
        version, _, given = entry.partition(",")
        if version == "v1" and hmac.compare_digest(given.encode(), expected):
            seen.add(webhook_id)
            return True
    return False


@pytest_twisted.ensureDeferred()
async def test_an_upload_is_posted_signed(tmp_path: Path) -> None:
    """file.stored reaches the webhook as JSON signed the Standard Webhooks
    way: the delivery id and the time are inside the signed content, so a
    receiver verifies it once and refuses it replayed, or replayed later
    with a new timestamp, or with another body; the delivery log says it
    was delivered."""
    receiver = Receiver()
    app = harness(tmp_path, poster=receiver.post)
    app.clock.advance(1_700_000_000)
    token = app.user("alice")
    created = await hook(app, token, "http://receiver.test/in")
    await app.call("PUT", "/files/a.txt", data=b"x", headers=auth(token))
    settle(app)
    ((url, body, headers),) = receiver.got
    assert url == "http://receiver.test/in"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["X-Uploadd-Event"] == "file.stored"
    payload = json.loads(body)
    assert payload["data"]["filename"] == "a.txt"
    assert payload["id"] == headers["webhook-id"]
    seen: set[str] = set()
    now = app.clock.seconds()
    assert verify(created["secret"], headers, body, now, seen)
    assert not verify(created["secret"], headers, body, now, seen)  # replayed
    assert not verify(created["secret"], headers, body, now + 301, set())
    restamped = {**headers, "webhook-timestamp": str(int(now) + 5)}
    assert not verify(created["secret"], restamped, body, now, set())
    assert not verify(created["secret"], headers, body + b" ", now, set())
    log = (
        await app.call(
            "GET", f"/webhooks/{created['id']}/deliveries", headers=auth(token)
        )
    ).json()["results"]
    assert [(d["delivered"], d["status"], d["attempts"]) for d in log] == [
        (True, 200, 1)
    ]


@pytest_twisted.ensureDeferred()
async def test_failures_are_retried_then_dead_lettered_without_repeats(
    tmp_path: Path,
) -> None:
    """A receiver answering 500 is retried with growing delays and finally
    dead-lettered; a second webhook that took the event is not sent it again."""
    receiver = Receiver(statuses={"http://down.test/": [500] * 10})
    app = harness(tmp_path, poster=receiver.post)
    token = app.user("alice")
    down = await hook(app, token, "http://down.test/")
    await hook(app, token, "http://up.test/")
    await app.call("PUT", "/files/a.txt", data=b"x", headers=auth(token))
    settle(app)
    for delay in (1, 2, 4, 8):
        settle(app, delay)
    to_down = [g for g in receiver.got if g[0] == "http://down.test/"]
    to_up = [g for g in receiver.got if g[0] == "http://up.test/"]
    assert len(to_down) == 5 and len(to_up) == 1
    # Each retry keeps its id and is signed afresh with its own time.
    assert len({g[2]["webhook-id"] for g in to_down}) == 1
    assert len({g[2]["webhook-timestamp"] for g in to_down}) == 5
    assert len({g[2]["webhook-signature"] for g in to_down}) == 5
    log = (
        await app.call("GET", f"/webhooks/{down['id']}/deliveries", headers=auth(token))
    ).json()["results"]
    assert log[0]["attempts"] == 5 and not log[0]["delivered"]
    assert log[0]["error"] == "HTTP 500"
    bus = app.parts.bus
    assert isinstance(bus, InProcessBus)
    assert [q for q, _, _ in bus.dead_letters] == ["push.webhooks"]
    # The admin console names the receiver that failed.
    root = app.user("root", "admin")
    status = (await app.call("GET", "/admin/status", headers=auth(root))).json()
    failed = [f for f in status["recent_failures"] if f["kind"] == "webhook"]
    assert len(failed) == 5
    assert {(f["url"], f["webhook_id"]) for f in failed} == {
        ("http://down.test/", down["id"])
    }


def test_a_failed_receiver_is_named_without_its_credentials() -> None:
    """A URL's user name and password stay out of the failures list."""
    assert without_credentials("https://u:pw@hooks.test:8443/in?x=1") == (
        "https://hooks.test:8443/in?x=1"
    )
    assert without_credentials("http://hooks.test/a@b") == "http://hooks.test/a@b"


def test_webhooks_made_before_whsec_secrets_still_sign() -> None:
    """A stored secret without the whsec_ prefix (webhooks made before
    uploadd used them) is its own key."""
    old = "ab" * 32
    body = b'{"id": "1-h"}'
    mac = hmac.new(old.encode(), b"1-h.1700000000." + body, hashlib.sha256)
    expected = "v1," + base64.b64encode(mac.digest()).decode()
    assert signature(old, "1-h", 1700000000, body) == expected
