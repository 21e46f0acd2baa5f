"""Web Push: subscriptions through the API, and the push worker's messages
(encrypted for the browser, signed with VAPID), retries and clean-ups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest_twisted
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent

from tests.support import FakeReactor, Harness, auth, harness, now
from tests.unit.test_webhooks import settle
from tests.webpush import Browser, check_vapid
from uploadd.config import load_config
from uploadd.events import topics
from uploadd.events.bus import InProcessBus
from uploadd.renditions import READY, rendition_event
from uploadd.store.interface import Event, FileRecord, Rendition
from uploadd.store.memory import MemoryStore
from uploadd.workers.ece import MAX_PAYLOAD
from uploadd.workers.targets import RefusedTarget
from uploadd.workers.webpush import notification
from uploadd.workers.wiring import push_role, vapid_of

PUSH = "https://push.example.net/wpush/v2/"


@attrs.define
class PushService:
    """Records POSTs; answers with the next status queued for an endpoint
    (then 201), or raises the exception queued."""

    answers: dict[str, list[int | Exception]] = attrs.field(factory=dict)
    got: list[tuple[str, bytes, dict[str, str]]] = attrs.field(factory=list)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.got.append((url, body, headers))
        queue = self.answers.get(url, [])
        answer = queue.pop(0) if queue else 201
        if isinstance(answer, Exception):
            raise answer
        return answer

    def to(self, endpoint: str) -> list[tuple[bytes, dict[str, str]]]:
        return [(body, headers) for url, body, headers in self.got if url == endpoint]


async def subscribe(app: Harness, token: str, browser: Browser, endpoint: str) -> Any:
    reply = await app.call(
        "POST",
        "/push/subscriptions",
        json=browser.subscription(endpoint),
        headers=auth(token),
    )
    assert reply.code in (200, 201), reply.body
    return reply.json()


def ready(owner: int, profile: str = "audio-aac", outputs: int = 1) -> Event:
    """The event of a rendition made ready."""
    source = FileRecord("f1", owner, "talk.mp3", 3, "s", "m", "audio/mpeg", 1.0)
    rendition = Rendition(
        "f1", profile, READY, 1.0, 2.0, 100.0, None, 1,
        tuple(f"o{n}" for n in range(outputs)),
    )  # fmt: skip
    return rendition_event(topics.TRANSCODE_DONE, source, rendition, 2.0)


def happen(app: Harness, *events: Event) -> None:
    """Record ``events`` in the outbox and let the relay and the bus run."""
    now(app.store.add_events(events))
    app.parts.relay.kick()
    settle(app)


@pytest_twisted.ensureDeferred()
async def test_subscriptions_are_kept_renewed_and_deleted(tmp_path: Path) -> None:
    """A browser's PushSubscription is kept for its user (201), posted again
    it keeps its id (200), it is listed without its keys, and only its user
    deletes it."""
    app = harness(tmp_path)
    token, other = app.user("alice"), app.user("bob")
    browser = Browser()
    made = await subscribe(app, token, browser, PUSH + "a")
    again = await subscribe(app, token, Browser(), PUSH + "a")
    assert again["id"] == made["id"]
    listed = (await app.call("GET", "/push/subscriptions", headers=auth(token))).json()
    assert [(s["id"], s["endpoint"]) for s in listed["results"]] == [
        (made["id"], PUSH + "a")
    ]
    assert "keys" not in listed["results"][0]
    path = f"/push/subscriptions/{made['id']}"
    assert (await app.call("DELETE", path, headers=auth(other))).code == 404
    assert (await app.call("DELETE", path, headers=auth(token))).code == 204
    assert (await app.call("DELETE", path, headers=auth(token))).code == 404
    assert app.store.push_subscriptions == {}


@pytest_twisted.ensureDeferred()
async def test_bad_subscriptions_are_refused_with_the_reason(tmp_path: Path) -> None:
    """Without keys, with keys that are not a P-256 point and a 16-byte
    secret, with an endpoint that is not https or is at a private address,
    or without a token that may list files: refused, nothing kept."""
    app = harness(tmp_path)
    token = app.user("alice")
    keys = Browser().keys
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"endpoint": PUSH}, 400, "keys"),
        ({"endpoint": PUSH, "keys": {**keys, "p256dh": "AAAA"}}, 400, "p256dh"),
        ({"endpoint": PUSH, "keys": {**keys, "auth": "AAAA"}}, 400, "auth"),
        ({"keys": keys}, 400, "endpoint"),
        ({"endpoint": "http://push.example.net/x", "keys": keys}, 400, "https"),
        ({"endpoint": "https://127.0.0.1/x", "keys": keys}, 422, "loopback"),
        ({"endpoint": "https://10.0.0.8/x", "keys": keys}, 422, "private"),
        ({"endpoint": "https://x/" + "a" * 2048, "keys": keys}, 400, "longer"),
    ]
    for body, code, reason in cases:
        reply = await app.call(
            "POST", "/push/subscriptions", json=body, headers=auth(token)
        )
        assert reply.code == code, (body, reply.body)
        assert reason in reply.json()["detail"]
    uploader = app.user("robot", "upload-only")
    reply = await app.call(
        "POST",
        "/push/subscriptions",
        json={"endpoint": PUSH, "keys": keys},
        headers=auth(uploader),
    )
    assert reply.code == 403
    assert (await app.call("POST", "/push/subscriptions", json={})).code == 401
    assert app.store.push_subscriptions == {}


@pytest_twisted.ensureDeferred()
async def test_past_the_limit_the_oldest_subscription_is_forgotten(
    tmp_path: Path,
) -> None:
    """[push] max_subscriptions browsers per user: one more replaces the
    oldest."""
    app = harness(tmp_path, settings={("push", "max_subscriptions"): "2"})
    token = app.user("alice")
    for name in ("a", "b", "c"):
        await subscribe(app, token, Browser(), PUSH + name)
        app.clock.advance(1)
    listed = (await app.call("GET", "/push/subscriptions", headers=auth(token))).json()
    assert [s["endpoint"] for s in listed["results"]] == [PUSH + "b", PUSH + "c"]


@pytest_twisted.ensureDeferred()
async def test_the_public_key_and_the_service_worker_are_served(
    tmp_path: Path,
) -> None:
    """GET /push/key (no token needed) gives the VAPID public key generated
    into the data dir; /push/worker.js is the service worker's script."""
    app = harness(tmp_path)
    reply = await app.call("GET", "/push/key")
    assert reply.code == 200
    key = reply.json()["public_key"]
    assert len(key) == 87 and key.startswith("B")  # a 65-byte point
    assert (app.data_dir / "vapid-private-key").exists()
    script = await app.call("GET", "/push/worker.js")
    assert script.code == 200
    assert script.header("content-type") == "text/javascript; charset=utf-8"
    assert b'addEventListener("push"' in script.body


@pytest_twisted.ensureDeferred()
async def test_a_ready_rendition_is_pushed_encrypted_and_signed(
    tmp_path: Path,
) -> None:
    """transcode.done of alice's file reaches each of her browsers: a JSON
    notification only that browser can read (RFC 8291, aes128gcm), signed
    for the push service with the served VAPID key, with TTL, Urgency and
    Topic. Other topics and other users' events push nothing."""
    service = PushService()
    app = harness(tmp_path, poster=service.post)
    app.clock.advance(1_700_000_000)
    token = app.user("alice")
    app.user("bob")
    phone, laptop = Browser(), Browser()
    await subscribe(app, token, phone, PUSH + "phone")
    app.clock.advance(1)  # listed oldest first
    await subscribe(app, token, laptop, PUSH + "laptop")
    key = (await app.call("GET", "/push/key")).json()["public_key"]
    progress = Event(topics.TRANSCODE_PROGRESS, {"file_id": "f1"}, 1, 1.0)
    stored = Event(topics.FILE_STORED, {"file_id": "f1"}, 1, 1.0)
    happen(app, progress, stored, ready(2), ready(1))
    assert [url for url, _, _ in service.got] == [PUSH + "phone", PUSH + "laptop"]
    for browser, (url, body, headers) in zip((phone, laptop), service.got, strict=True):
        check_vapid(headers["Authorization"], url, key, app.clock.seconds())
        assert headers["TTL"] == "86400"
        assert headers["Content-Encoding"] == "aes128gcm"
        assert headers["Content-Type"] == "application/octet-stream"
        assert headers["Urgency"] == "normal"
        assert 0 < len(headers["Topic"]) <= 32
        shown = json.loads(browser.read(body))
        assert shown["title"] == "talk.mp3 is ready"
        assert shown["body"] == "audio-aac: ready to download"
        assert shown["url"] == "/#/library"
        assert shown["tag"] == "f1/audio-aac"
        assert (shown["file_id"], shown["filename"]) == ("f1", "talk.mp3")
        assert (shown["profile"], shown["state"], shown["outputs"]) == (
            "audio-aac",
            "READY",
            1,
        )
    assert service.got[0][1] != service.got[1][1]


@pytest_twisted.ensureDeferred()
async def test_gone_subscriptions_are_forgotten_and_refusals_not_retried(
    tmp_path: Path,
) -> None:
    """410 or 404: the browser dropped the subscription, so uploadd forgets
    it. A 403 (a key the push service refuses) or a private address: a retry
    cannot help, so there is none, and the admin console lists it."""
    service = PushService(
        answers={
            PUSH + "gone": [410],
            PUSH + "lost": [404],
            PUSH + "forbidden": [403],
            PUSH + "private": [RefusedTarget("push.example.net resolves to ...")],
        }
    )
    app = harness(tmp_path, poster=service.post)
    token = app.user("alice")
    for name in ("gone", "lost", "forbidden", "private", "fine"):
        await subscribe(app, token, Browser(), PUSH + name)
    happen(app, ready(1))
    for delay in (1, 2, 4, 8):
        settle(app, delay)
    assert len(service.got) == 5
    left = {s.endpoint for s in app.store.push_subscriptions.values()}
    assert left == {PUSH + "forbidden", PUSH + "private", PUSH + "fine"}
    status = (
        await app.call("GET", "/admin/status", headers=auth(app.user("root", "admin")))
    ).json()
    failures = [f for f in status["recent_failures"] if f["kind"] == "push"]
    assert sorted(f["reason"] for f in failures) == [
        "HTTP 403",
        "push.example.net resolves to ...",
    ]
    assert all(f["file_id"] == "f1" for f in failures)


@pytest_twisted.ensureDeferred()
async def test_unavailable_push_services_are_retried_then_dead_lettered(
    tmp_path: Path,
) -> None:
    """A push service answering 503 (or 429, or not at all) is retried with
    growing delays, then the message is dead-lettered; the browser whose
    push service took it first is not sent it again."""
    service = PushService(
        answers={
            PUSH + "down": [503, 429, ConnectionRefusedError(), 503, 503, 503],
        }
    )
    app = harness(tmp_path, poster=service.post)
    token = app.user("alice")
    await subscribe(app, token, Browser(), PUSH + "down")
    await subscribe(app, token, Browser(), PUSH + "up")
    happen(app, ready(1))
    for delay in (1, 2, 4, 8):
        settle(app, delay)
    assert len(service.to(PUSH + "down")) == 5
    assert len(service.to(PUSH + "up")) == 1
    bus = app.parts.bus
    assert isinstance(bus, InProcessBus)
    assert [q for q, _, _ in bus.dead_letters] == ["push.webpush"]
    assert len(app.store.push_subscriptions) == 2


def test_a_notification_fits_its_size_and_opens_the_right_page() -> None:
    """Slides open the deck; a very long name is cut, so the payload stays
    within what one push message carries; a failure says what failed."""
    slides = notification(ready(1, "pdf-slides", 12), "https://files.example.com/")
    assert slides["url"] == "https://files.example.com/#/slides/f1"
    assert slides["body"] == "pdf-slides: 12 slides"
    huge = attrs.evolve(ready(1), payload={**ready(1).payload, "filename": "ü" * 5000})
    shown = notification(huge)
    assert len(shown["filename"]) == 200
    encoded = json.dumps(shown, ensure_ascii=False).encode()
    assert len(encoded) < MAX_PAYLOAD
    failed = Event(
        topics.TRANSCODE_FAILED,
        {"file_id": "f1", "filename": "a.mp3", "profile": "audio-aac", "error": "bad"},
        1,
    )
    assert (notification(failed)["title"], notification(failed)["body"]) == (
        "a.mp3: audio-aac failed",
        "bad",
    )


def test_a_push_worker_process_uses_uploadds_key_or_says_it_has_none(
    tmp_path: Path,
) -> None:
    """A `worker --role push` process signs with the key uploadd generated
    in the data directory it shares (or [push] vapid_private_key); with
    neither it never makes one of its own (it would not match what browsers
    subscribed with): it runs webhooks and email and logs why Web Push is
    off."""
    data = tmp_path / "data"
    config = load_config(environ={}, options={("storage", "data_dir"): str(data)})
    bus = InProcessBus(Clock())
    with capturedLogs() as logged:
        push_role(config, FakeReactor(), MemoryStore(), bus)
    assert sorted(bus.queues) == ["push.webhooks"]
    assert not data.exists()
    assert any("no Web Push in this worker" in formatEvent(e) for e in logged)
    made = vapid_of(config)  # as uploadd does at start
    bus = InProcessBus(Clock())
    push_role(config, FakeReactor(), MemoryStore(), bus)
    assert sorted(bus.queues) == ["push.webhooks", "push.webpush"]
    assert vapid_of(config, create=False).public_key == made.public_key
