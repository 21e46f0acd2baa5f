"""Webhooks: the API, signed deliveries, retries, dead letters, idempotence."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import attrs
import pytest_twisted

from tests.support import Harness, auth, harness
from uploadd.events.bus import InProcessBus


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
    """The secret is shown once; listing hides it; a bad URL is 400."""
    app = harness(tmp_path)
    token = app.user("alice")
    created = await hook(app, token, "http://example.test/in")
    assert len(created["secret"]) == 64
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


@pytest_twisted.ensureDeferred()
async def test_an_upload_is_posted_signed(tmp_path: Path) -> None:
    """file.stored reaches the webhook as JSON signed with its secret; the
    delivery log says so."""
    receiver = Receiver()
    app = harness(tmp_path, poster=receiver.post)
    token = app.user("alice")
    created = await hook(app, token, "http://receiver.test/in")
    await app.call("PUT", "/files/a.txt", data=b"x", headers=auth(token))
    settle(app)
    ((url, body, headers),) = receiver.got
    assert url == "http://receiver.test/in"
    expected = hmac.new(created["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Uploadd-Signature"] == f"sha256={expected}"
    assert headers["X-Uploadd-Event"] == "file.stored"
    payload = json.loads(body)
    assert payload["data"]["filename"] == "a.txt"
    assert payload["id"] == headers["X-Uploadd-Delivery"]
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
    assert len({g[2]["X-Uploadd-Delivery"] for g in to_down}) == 1
    log = (
        await app.call("GET", f"/webhooks/{down['id']}/deliveries", headers=auth(token))
    ).json()["results"]
    assert log[0]["attempts"] == 5 and not log[0]["delivered"]
    assert log[0]["error"] == "HTTP 500"
    bus = app.parts.bus
    assert isinstance(bus, InProcessBus)
    assert [q for q, _, _ in bus.dead_letters] == ["push.webhooks"]
