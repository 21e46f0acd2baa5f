"""The event bus seam in memory and the outbox relay."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import attrs
import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from tests.support import auth, harness, now
from uploadd.api.live import LiveHub, _Listener
from uploadd.auth.tokens import Principal
from uploadd.events.bus import InProcessBus, matches
from uploadd.events.relay import OutboxRelay
from uploadd.store.interface import Event
from uploadd.store.memory import MemoryStore


@pytest.mark.parametrize(
    ("pattern", "topic", "hit"),
    [
        ("file.stored", "file.stored", True),
        ("file.*", "file.stored", True),
        ("file.*", "file.stored.again", False),
        ("#", "transcode.progress", True),
        ("transcode.#", "transcode", True),
        ("*.done", "transcode.done", True),
        ("file.#.x", "file.a.b.x", True),
        ("file.*", "upload.stored", False),
    ],
)
def test_a_topic_pattern_matches_topics_by_wildcard(
    pattern: str, topic: str, hit: bool
) -> None:
    assert matches(pattern, topic) is hit


def test_handlers_get_their_topics_retries_then_dead_letters() -> None:
    """A queue sees matching events in order; a handler that keeps failing
    is retried up to max_attempts, then the event is dead-lettered."""
    clock = Clock()
    bus = InProcessBus(clock, max_attempts=3, retry_delay=1.0)
    seen: list[str] = []

    async def record(event: Event) -> None:
        seen.append(event.topic)

    attempts: list[int] = []

    async def broken(event: Event) -> None:
        attempts.append(event.id)
        raise RuntimeError("the receiver is down")

    bus.subscribe("log", "file.*", record)
    bus.subscribe("hooks", "file.stored", broken)
    bus.publish(Event("file.stored", {}, id=1))
    bus.publish(Event("file.deleted", {}, id=2))
    bus.publish(Event("upload.started", {}, id=3))
    clock.advance(0)
    clock.advance(0)
    assert seen == ["file.stored", "file.deleted"]
    clock.advance(10)
    clock.advance(10)
    assert attempts == [1, 1, 1]
    assert [(q, e.id) for q, e, _ in bus.dead_letters] == [("hooks", 1)]


@attrs.define
class FlakyBus:
    """A bus that refuses while down and records what it took."""

    down: bool = False
    got: list[int] = attrs.field(factory=list)

    def publish_many(self, events: list[Event]) -> Deferred[None]:
        if self.down:
            return fail(ConnectionRefusedError("broker down"))
        self.got.extend(event.id for event in events)
        return succeed(None)


def test_the_relay_delivers_everything_in_order_once_the_bus_is_back() -> None:
    """With the bus down events wait in the outbox; when it returns every one
    is delivered, in order, and marked sent exactly once."""
    store, clock = MemoryStore(), Clock()
    bus = FlakyBus(down=True)
    relay = OutboxRelay(store, bus, clock)  # type: ignore[arg-type]
    for n in range(5):
        store._append([Event("file.stored", {"n": n})])
    assert now(relay.relay()) == 0
    assert now(store.outbox_depth()) == 5
    bus.down = False
    assert now(relay.relay()) == 5
    assert bus.got == [1, 2, 3, 4, 5]
    assert now(store.outbox_depth()) == 0
    assert now(relay.relay()) == 0


@pytest_twisted.ensureDeferred()
async def test_uploads_and_deletes_publish_file_events(tmp_path: Path) -> None:
    """A stored file's event and a deleted file's event reach the bus."""
    app = harness(tmp_path)
    token = app.user("alice")
    seen: list[tuple[str, str]] = []

    async def record(event: Event) -> None:
        seen.append((event.topic, event.payload["filename"]))

    app.parts.bus.subscribe("test", "file.*", record)
    stored = (
        await app.call("PUT", "/files/a.txt", data=b"x", headers=auth(token))
    ).json()
    await app.call("DELETE", f"/files/{stored['id']}", headers=auth(token))
    app.clock.advance(0)
    app.clock.advance(0)
    assert seen == [("file.stored", "a.txt"), ("file.deleted", "a.txt")]
    assert now(app.store.outbox_depth()) == 0


def test_the_amqp_spec_ships_and_loads() -> None:
    """txamqp parses the shipped 0-9-1 spec, with tx and confirm classes."""
    from uploadd.events.spec import amqp_spec

    spec = amqp_spec()
    assert (spec.major, spec.minor) == (0, 9)
    assert "commit" in [m.name for m in spec.classes.byname["tx"].methods]
    assert "select" in [m.name for m in spec.classes.byname["confirm"].methods]


def test_a_live_stream_gets_an_event_once_though_the_bus_repeats_it() -> None:
    """The bus delivers at least once (a publish the broker took but did
    not confirm is sent again): the hub writes each event id to a stream
    once; events without an id (not from the outbox) are never dropped."""
    written: list[bytes] = []

    class Stream:
        def write(self, data: bytes) -> None:
            written.append(data)

    hub = LiveHub(Clock())
    hub.add(_Listener(cast(Any, Stream()), Principal(1, "alice", frozenset())))
    stored = Event("file.stored", {"filename": "a.txt"}, 1, 1.0, 7)
    for event in (stored, stored, Event("file.stored", {"n": 2}, 1, 2.0, 8), stored):
        now(hub.deliver(event))
    loose = Event("upload.note", {"x": 1}, 1, 3.0)
    for _ in range(2):
        now(hub.deliver(loose))
    ids = [m.split(b"\n", 1)[0] for m in written]
    assert ids == [b"id: 7", b"id: 8", b"id: 0", b"id: 0"]
