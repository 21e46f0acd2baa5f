"""Two uploadd instances on one RabbitMQ: work queues shared (quorum when
asked), each instance's live stream on a queue of its own, both declared
again after the broker restarts."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import deferLater

from noded.reactor import checked
from tests.integration.broker import SERVER, Broker
from uploadd.api.live import LiveHub
from uploadd.events.amqp import AmqpAddress, AmqpBus
from uploadd.events.topics import FILE_STORED, SLIDESHOW_CONTROL
from uploadd.store.interface import Event

pytestmark = pytest.mark.integration


def queue_types(broker: Broker) -> dict[str, str]:
    """name -> type of every queue on the broker, from rabbitmqctl."""
    ctl = SERVER.with_name("rabbitmqctl")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(broker.root / "home"),
        "RABBITMQ_NODENAME": "rabbit@localhost",
        "ERL_EPMD_PORT": str(broker.epmd_port),
    }
    done = subprocess.run(
        [str(ctl), "-q", "list_queues", "name", "type"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(
        line.split("\t")[:2] for line in done.stdout.splitlines() if "\t" in line
    )


async def until(check: Any, within: float, what: str) -> None:
    from twisted.internet import reactor

    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await deferLater(reactor, 0.1)


@pytest_twisted.ensureDeferred()
async def test_work_is_shared_and_live_events_reach_every_instance(
    broker: Broker,
) -> None:
    """With queue_type = quorum the shared work queue is a quorum queue and
    each event on it is handled by one instance; each instance's live hub
    has a queue of its own and hears every event; after a broker restart
    both instances declare their queues again and go on."""
    from twisted.internet import reactor

    address = AmqpAddress.parse(broker.url)
    work: list[tuple[str, int]] = []
    hubs = {name: LiveHub(reactor) for name in ("a", "b")}
    buses = {
        name: AmqpBus(checked(reactor), address, queue_type="quorum")
        for name in ("a", "b")
    }
    for name, bus in buses.items():

        async def handle(event: Event, name: str = name) -> None:
            work.append((name, event.id))

        bus.subscribe("work", FILE_STORED, handle, 4)
        hubs[name].attach(bus)
        bus.start()
    try:

        def send(first: int) -> Any:
            numbers = range(first, first + 20)
            stored = [Event(FILE_STORED, {"n": n}, 1, 0.0, n) for n in numbers]
            moves = [
                Event(
                    SLIDESHOW_CONTROL,
                    {"file_id": f"f{n}", "current": 1, "updated": "now"},
                    1,
                    0.0,
                    1000 + n,  # outbox ids are unique across topics
                )
                for n in numbers
            ]
            return buses["a"].publish_many(stored + moves)

        await until(lambda: all(b._publisher for b in buses.values()), 30, "connected")
        await deferLater(reactor, 0.5)  # consumers declared
        await send(1)
        await until(lambda: len(work) == 20, 30, "20 work events handled")
        await until(
            lambda: all(len(hub.slides) == 20 for hub in hubs.values()),
            30,
            "every instance's live hub hearing every move",
        )
        assert sorted(n for _, n in work) == list(range(1, 21))  # each once
        types = queue_types(broker)
        assert types["work"] == "quorum"
        assert sum(1 for t in types.values() if t == "classic") >= 2  # live, each

        broker.stop()  # blocks the reactor: the buses notice once it turns
        await until(lambda: not any(b._client for b in buses.values()), 30, "lost")
        broker.start()
        await until(
            lambda: all(b._publisher for b in buses.values()), 60, "reconnected"
        )
        await deferLater(reactor, 1.0)  # consumers declared again
        await send(21)
        await until(lambda: len(work) == 40, 30, "work after the restart")
        await until(
            lambda: all(len(hub.slides) == 40 for hub in hubs.values()),
            30,
            "live events after the restart",
        )
        assert sorted(n for _, n in work) == list(range(1, 41))
    finally:
        for bus in buses.values():
            bus.stop()
