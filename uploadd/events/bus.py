"""The event bus seam and its in-process implementation.

A topic exchange: messages carry a routing key (``file.stored``); queues bind
patterns (``file.*``, ``transcode.#``) and feed one handler each. A message
is acknowledged when its handler succeeds; a failing handler gets it again
up to ``max_attempts`` times, then it goes to the dead letters. ``publish``
fires once the bus holds the message (for AMQP: after the broker's commit).

Beside the events, instances sharing a bus tell each other news that is
theirs alone (an upload's progress, a failure of background work, a failed
sign-in): ``announce`` reaches every instance's ``hear`` handlers, and no
queue of ``subscribe`` ever sees it, so webhooks, mail and live streams do
not carry it. An announcement is sent at most once and kept nowhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from uploadd.store.interface import Event

log = Logger()

Handler = Callable[[Event], Awaitable[None]]


def matches(pattern: str, topic: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more words."""
    return _match(pattern.split("."), topic.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[at:]) for at in range(len(words) + 1))
    if not words:
        return False
    return head in ("*", words[0]) and _match(rest, words[1:])


class IEventBus(Interface):
    kind = Attribute("'in-process' or 'rabbitmq': where events travel")
    published = Attribute("how many events this bus has taken, an int")
    connected = Attribute(
        "whether the bus takes events now, a bool (in-process: always; "
        "RabbitMQ: while connected to the broker)"
    )

    def start() -> None:
        """Begin (reach the broker); its owner calls it once, at start."""

    def stop() -> None:
        """Stop delivering and let the broker go; nothing is published after."""

    def describe() -> str:
        """Where events travel, for logs: ``amqp://host:port`` or in-process."""

    def depth() -> dict[str, int] | None:
        """Messages waiting per queue when this process holds the queues;
        None when a broker holds them."""

    def publish(event: Event) -> Deferred[None]:
        """Hand ``event`` to the bus; fires once the bus holds it."""

    def publish_many(events: Sequence[Event]) -> Deferred[None]:
        """Hand ``events`` to the bus in order; fires once it holds them all."""

    def subscribe(
        queue: str,
        pattern: str,
        handler: Handler,
        concurrency: int | None = None,
        each_instance: bool = False,
    ) -> None:
        """Deliver events whose topic matches ``pattern`` to ``handler``, at
        most ``concurrency`` at once (None: the bus's default).

        Instances subscribing to one ``queue`` share its work: each event
        reaches one of them. With ``each_instance`` every instance gets every
        event on a queue of its own that lives as long as its connection
        (live streams, which each instance serves to its own clients)."""

    def announce(event: Event) -> Deferred[None]:
        """Tell every instance on this bus, this one too, of ``event``: fires
        once it is sent, fails while the broker is away (nothing keeps it).
        Instances that are not connected then never hear it."""

    def hear(pattern: str, handler: Handler) -> None:
        """Give ``handler`` every announcement whose topic matches ``pattern``,
        this instance's own among them (a hearer that must not act on its own
        news tells it apart), once; a handler that fails is not asked again."""


@attrs.define
class _Queue:
    pattern: str
    handler: Handler
    concurrency: int = 1
    pending: list[tuple[Event, int]] = attrs.field(factory=list)
    busy: int = 0


@implementer(IEventBus)
@attrs.define
class InProcessBus:
    """The embedded default: same semantics as the broker, in memory."""

    _clock: IReactorTime
    max_attempts: int = 5
    retry_delay: float = 1.0
    queues: dict[str, _Queue] = attrs.field(factory=dict)
    dead_letters: list[tuple[str, Event, str]] = attrs.field(factory=list)
    hearers: list[tuple[str, Handler]] = attrs.field(factory=list)
    published: int = 0
    kind: str = "in-process"
    connected: bool = True

    def start(self) -> None:
        """Nothing to reach: the queues are here."""

    def stop(self) -> None:
        """Nothing to let go of."""

    def describe(self) -> str:
        return "the in-process bus"

    def publish(self, event: Event) -> Deferred[None]:
        self.published += 1
        for name, queue in self.queues.items():
            if matches(queue.pattern, event.topic):
                queue.pending.append((event, 1))
                self._clock.callLater(0, self._drain, name)
        return succeed(None)

    def publish_many(self, events: Sequence[Event]) -> Deferred[None]:
        for event in events:
            self.publish(event)
        return succeed(None)

    def subscribe(
        self,
        queue: str,
        pattern: str,
        handler: Handler,
        concurrency: int | None = None,
        each_instance: bool = False,
    ) -> None:
        # One process is the only instance: a queue of its own is the queue.
        self.queues[queue] = _Queue(pattern, handler, concurrency or 1)

    def announce(self, event: Event) -> Deferred[None]:
        """To this process's hearers (the only instance), on a later turn as
        a broker would; not counted as published."""
        for pattern, handler in self.hearers:
            if matches(pattern, event.topic):
                self._clock.callLater(0, _tell, handler, event)
        return succeed(None)

    def hear(self, pattern: str, handler: Handler) -> None:
        self.hearers.append((pattern, handler))

    def _drain(self, name: str) -> None:
        queue = self.queues[name]
        while queue.busy < queue.concurrency and queue.pending:
            queue.busy += 1
            event, attempt = queue.pending.pop(0)
            Deferred.fromCoroutine(self._deliver(name, queue, event, attempt))

    async def _deliver(
        self, name: str, queue: _Queue, event: Event, attempt: int
    ) -> None:
        try:
            await queue.handler(event)
        except Exception as error:
            if attempt >= self.max_attempts:
                log.warn(
                    "{queue}: event {event_id} dead-lettered after {attempt} tries: "
                    "{error}",
                    queue=name,
                    event_id=event.id,
                    attempt=attempt,
                    error=error,
                )
                self.dead_letters.append((name, event, str(error)))
            else:
                self._clock.callLater(
                    self.retry_delay * 2 ** (attempt - 1),
                    self._requeue,
                    name,
                    event,
                    attempt + 1,
                )
        finally:
            queue.busy -= 1
            self._clock.callLater(0, self._drain, name)

    def _requeue(self, name: str, event: Event, attempt: int) -> None:
        self.queues[name].pending.append((event, attempt))
        self._drain(name)

    def depth(self) -> dict[str, int]:
        return {name: len(queue.pending) for name, queue in self.queues.items()}


def _tell(handler: Handler, event: Event) -> Deferred[None]:
    """One announcement to one hearer; a failure is logged, not retried."""
    told = Deferred.fromCoroutine(_awaited(handler(event)))
    told.addErrback(
        lambda f: log.failure("hearing {topic} failed", f, topic=event.topic)
    )
    return told


async def _awaited(pending: Awaitable[None]) -> None:
    await pending
