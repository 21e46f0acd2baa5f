"""Several uploadd instances in memory: what one announces on the bus the
others hear (upload progress, failures, failed sign-ins, events waiting for
the relay's leader), and what one answers for bytes another instance holds.
Two parts sharing one in-process bus stand for two instances; time on a
Clock."""

from __future__ import annotations

from twisted.internet.task import Clock

from uploadd.events import topics
from uploadd.events.bus import InProcessBus
from uploadd.store.interface import Event


def test_announcements_reach_every_hearer_and_no_queue() -> None:
    """An announcement goes to the hearers of its topic on a later turn, not
    to the queues consumers subscribe (webhooks, live streams), and is not
    counted as published; a hearer that fails is not asked again."""
    clock = Clock()
    bus = InProcessBus(clock)
    queued: list[str] = []
    heard: list[str] = []
    failing: list[str] = []

    async def consume(event: Event) -> None:
        queued.append(event.topic)

    async def hear(event: Event) -> None:
        heard.append(event.topic)

    async def broken(event: Event) -> None:
        failing.append(event.topic)
        raise RuntimeError("cannot take it")

    bus.subscribe("everything", "#", consume)
    bus.hear("upload.*", hear)
    bus.hear("upload.progress", broken)
    bus.announce(Event(topics.UPLOAD_PROGRESS, {}))
    bus.announce(Event(topics.WORK_FAILED, {}))
    bus.publish(Event(topics.FILE_STORED, {}))
    assert heard == []
    clock.advance(0)
    clock.advance(10)
    assert heard == failing == [topics.UPLOAD_PROGRESS]
    assert queued == [topics.FILE_STORED]
    assert bus.published == 1
