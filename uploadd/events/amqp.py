"""The event bus on RabbitMQ, through txamqp.

A durable topic exchange (``uploadd``); durable queues bound by pattern;
persistent messages published inside a transaction, so ``publish`` fires only
once the broker holds the message (``tx.commit``), one transaction at a
time; consumers with manual acks
and a prefetch. A handler that fails has its message published again with
an attempt count after a growing pause; past ``max_attempts`` it is rejected
to the dead-letter exchange (``uploadd.dead``, queue
``uploadd.dead-letters``). A lost
connection is re-made with backoff and the consumers re-subscribed; while it
is down ``publish`` fails and the outbox keeps the events.

Announcements between instances go through an exchange of their own
(``uploadd.instances``), which no consumer of events binds: transient
messages on a channel without transactions, each instance hearing them on
exclusive queues without acknowledgements.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import attrs
from twisted.internet.defer import Deferred, DeferredLock, fail
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from txamqp.client import TwistedDelegate
from txamqp.content import Content
from txamqp.protocol import AMQClient
from zope.interface import implementer

from noded.reactor import IReactor
from uploadd.events.bus import Handler, IEventBus
from uploadd.events.spec import amqp_spec
from uploadd.store.interface import Event

log = Logger()

DEAD_EXCHANGE = "uploadd.dead"
DEAD_QUEUE = "uploadd.dead-letters"


class BusUnavailable(Exception):
    """The broker cannot be reached right now."""


@attrs.frozen
class AmqpAddress:
    host: str
    port: int
    user: str
    password: str
    vhost: str

    @classmethod
    def parse(cls, url: str) -> AmqpAddress:
        parts = urlparse(url)
        return cls(
            parts.hostname or "127.0.0.1",
            parts.port or 5672,
            unquote(parts.username or "guest"),
            unquote(parts.password or "guest"),
            unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
        )


class _Client(AMQClient):  # type: ignore[misc]
    """txamqp's client, telling the bus when the connection goes."""

    on_lost: Any = None

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        if self.on_lost is not None:
            self.on_lost(reason)


@attrs.define
class _Subscription:
    queue: str
    pattern: str
    handler: Handler
    concurrency: int | None = None
    each_instance: bool = False
    #: The queue as the broker named it (each-instance queues are named by
    #: the broker, anew on every connection).
    declared: str = ""
    #: Where the queue is bound ("": the events' exchange).
    exchange: str = ""
    #: Announcements: no acknowledgements, no retries.
    heard: bool = False


@implementer(IEventBus)
@attrs.define
class AmqpBus:
    _reactor: IReactor
    address: AmqpAddress
    exchange: str = "uploadd"
    prefetch: int = 8
    max_attempts: int = 5
    #: ``classic`` or ``quorum`` (RabbitMQ's replicated queues) for the shared,
    #: durable queues; a queue of one instance is always classic and exclusive.
    queue_type: str = "classic"
    retry_delay: float = 1.0
    _client: Any = None
    _publisher: Any = None
    # One transaction at a time on the publishing channel: a publish sent
    # while another's tx.commit is pending closes the channel.
    _publishing: DeferredLock = attrs.field(factory=DeferredLock)
    _announcer: Any = None
    _connecting: Deferred[Any] | None = None
    _subscriptions: list[_Subscription] = attrs.field(factory=list)
    _channels: int = 1
    _retry: float = 1.0
    _stopped: bool = False
    published: int = 0
    kind: str = "rabbitmq"

    # -- connection ----------------------------------------------------------

    def start(self) -> None:
        self._connect_soon(0)

    def stop(self) -> None:
        self._stopped = True
        if self._client is not None and self._client.transport is not None:
            self._client.transport.loseConnection()

    def describe(self) -> str:
        return f"amqp://{self.address.host}:{self.address.port}"

    @property
    def connected(self) -> bool:
        """Connected to the broker, ready to publish."""
        return self._publisher is not None

    @property
    def announcements(self) -> str:
        """The exchange of announcements between instances."""
        return f"{self.exchange}.instances"

    def depth(self) -> dict[str, int] | None:
        """The broker keeps the queues."""
        return None

    def _type_arguments(self) -> dict[str, str]:
        """Declaration arguments of a shared queue: its type, when not the
        broker's default (a classic queue declared before keeps working)."""
        return {} if self.queue_type == "classic" else {"x-queue-type": self.queue_type}

    def _connect_soon(self, delay: float) -> None:
        if not self._stopped:
            self._reactor.callLater(delay, self._ensure)

    def _ensure(self) -> Deferred[Any]:
        if self._client is not None:
            return Deferred.fromCoroutine(_value(self._client))
        if self._connecting is None:
            self._connecting = Deferred.fromCoroutine(self._connect())

            def settled(result: Any) -> Any:
                self._connecting = None
                return result

            self._connecting.addBoth(settled)
        waiter: Deferred[Any] = Deferred()
        self._connecting.addBoth(
            lambda r: waiter.callback(r) if not waiter.called else None
        )
        return waiter

    async def _connect(self) -> Any:
        address = self.address
        try:
            endpoint = TCP4ClientEndpoint(self._reactor, address.host, address.port, 5)
            client = await connectProtocol(
                endpoint, _Client(TwistedDelegate(), address.vhost, amqp_spec())
            )
            await client.authenticate(address.user, address.password)
            publisher = await self._open(client)
            await publisher.exchange_declare(
                exchange=self.exchange, type="topic", durable=True
            )
            await publisher.exchange_declare(
                exchange=DEAD_EXCHANGE, type="fanout", durable=True
            )
            await publisher.queue_declare(
                queue=DEAD_QUEUE, durable=True, arguments=self._type_arguments()
            )
            await publisher.queue_bind(queue=DEAD_QUEUE, exchange=DEAD_EXCHANGE)
            await publisher.exchange_declare(
                exchange=self.announcements, type="topic", durable=True
            )
            await publisher.tx_select()
            # Announcements are not worth a transaction: a channel without.
            announcer = await self._open(client)
        except Exception as error:
            log.warn(
                "cannot reach the broker at {host}:{port}: {error}; retrying",
                host=address.host,
                port=address.port,
                error=error,
            )
            self._retry = min(30.0, self._retry * 2)
            self._connect_soon(self._retry)
            return BusUnavailable(str(error))
        client.on_lost = self._lost
        self._client, self._retry = client, 1.0
        # Queues first, publishing after: an instance's own live queue is new
        # on every connection, and events published before it is bound would
        # never reach that instance's streams.
        for subscription in self._subscriptions:
            await self._consume(subscription)
        self._publisher, self._announcer = publisher, announcer
        log.info(
            "connected to the broker at {host}:{port}",
            host=address.host,
            port=address.port,
        )
        return client

    async def _open(self, client: Any) -> Any:
        self._channels += 1
        channel = await client.channel(self._channels)
        await channel.channel_open()
        return channel

    def _lost(self, reason: Any) -> None:
        self._client = self._publisher = self._announcer = None
        if not self._stopped:
            log.warn(
                "lost the broker: {reason}; reconnecting",
                reason=reason.getErrorMessage(),
            )
            self._connect_soon(self._retry)

    # -- publishing ----------------------------------------------------------

    def publish(self, event: Event) -> Deferred[None]:
        if self._publisher is None:
            self._ensure()
            return fail(BusUnavailable("not connected to the broker"))
        return Deferred.fromCoroutine(self._publish(event))

    def publish_many(self, events: Sequence[Event]) -> Deferred[None]:
        """All of ``events`` in one broker transaction."""
        if self._publisher is None:
            self._ensure()
            return fail(BusUnavailable("not connected to the broker"))
        return Deferred.fromCoroutine(self._publish_all(events))

    async def _publish(self, event: Event, attempts: int = 0, queue: str = "") -> None:
        await self._publish_all([event], attempts, queue)

    async def _publish_all(
        self, events: Sequence[Event], attempts: int = 0, queue: str = ""
    ) -> None:
        await self._publishing.acquire()
        try:
            await self._commit(events, attempts, queue)
        finally:
            self._publishing.release()

    async def _commit(self, events: Sequence[Event], attempts: int, queue: str) -> None:
        publisher = self._publisher
        if publisher is None:
            raise BusUnavailable("not connected to the broker")
        for event in events:
            content = Content(json.dumps(_envelope(event)).encode("utf-8"))
            content["delivery-mode"] = 2
            content["content-type"] = "application/json"
            content["message-id"] = str(event.id)
            content["headers"] = {"x-attempts": attempts}
            exchange, key = (self.exchange, event.topic) if not queue else ("", queue)
            publisher.basic_publish(exchange=exchange, routing_key=key, content=content)
        await publisher.tx_commit()
        self.published += len(events)

    def announce(self, event: Event) -> Deferred[None]:
        if self._announcer is None:
            self._ensure()
            return fail(BusUnavailable("not connected to the broker"))
        return Deferred.fromCoroutine(self._announce(self._announcer, event))

    async def _announce(self, channel: Any, event: Event) -> None:
        content = Content(json.dumps(_envelope(event)).encode("utf-8"))
        content["delivery-mode"] = 1
        content["content-type"] = "application/json"
        await channel.basic_publish(
            exchange=self.announcements, routing_key=event.topic, content=content
        )

    # -- consuming -----------------------------------------------------------

    def subscribe(
        self,
        queue: str,
        pattern: str,
        handler: Handler,
        concurrency: int | None = None,
        each_instance: bool = False,
    ) -> None:
        subscription = _Subscription(
            queue, pattern, handler, concurrency, each_instance
        )
        self._subscriptions.append(subscription)
        if self._client is not None:
            Deferred.fromCoroutine(self._consume(subscription))

    def hear(self, pattern: str, handler: Handler) -> None:
        subscription = _Subscription(
            "announcements",
            pattern,
            handler,
            each_instance=True,
            exchange=self.announcements,
            heard=True,
        )
        self._subscriptions.append(subscription)
        if self._client is not None:
            Deferred.fromCoroutine(self._consume(subscription))

    async def _consume(self, subscription: _Subscription) -> None:
        channel = await self._open(self._client)
        if subscription.each_instance:
            declared = await channel.queue_declare(
                queue="", durable=False, exclusive=True, auto_delete=True
            )
            subscription.declared = declared.queue
        else:
            await channel.queue_declare(
                queue=subscription.queue,
                durable=True,
                arguments={
                    "x-dead-letter-exchange": DEAD_EXCHANGE,
                    **self._type_arguments(),
                },
            )
            subscription.declared = subscription.queue
        await channel.queue_bind(
            queue=subscription.declared,
            exchange=subscription.exchange or self.exchange,
            routing_key=subscription.pattern,
        )
        # Unacknowledged messages are the handlers at work: the prefetch is
        # the consumer's concurrency.
        await channel.basic_qos(
            prefetch_count=subscription.concurrency or self.prefetch
        )
        reply = await channel.basic_consume(
            queue=subscription.declared, no_ack=subscription.heard
        )
        incoming = await self._client.queue(reply.consumer_tag)
        Deferred.fromCoroutine(self._serve(subscription, channel, incoming))

    async def _serve(
        self, subscription: _Subscription, channel: Any, incoming: Any
    ) -> None:
        while True:
            try:
                message = await incoming.get()
            except Exception:
                return  # the connection went; a new consumer comes with it
            if subscription.heard:
                Deferred.fromCoroutine(self._hear(subscription, message))
            else:
                Deferred.fromCoroutine(self._handle(subscription, channel, message))

    async def _hear(self, subscription: _Subscription, message: Any) -> None:
        try:
            event = _event(json.loads(message.content.body))
            await subscription.handler(event)
        except Exception:
            log.failure(
                "hearing an announcement ({pattern}) failed",
                pattern=subscription.pattern,
            )

    async def _handle(
        self, subscription: _Subscription, channel: Any, message: Any
    ) -> None:
        headers = message.content.properties.get("headers") or {}
        attempts = int(headers.get("x-attempts", 0)) + 1
        try:
            event = _event(json.loads(message.content.body))
            await subscription.handler(event)
        except Exception as error:
            if attempts >= self.max_attempts:
                log.warn(
                    "{queue}: message dead-lettered after {attempts} tries: {error}",
                    queue=subscription.queue,
                    attempts=attempts,
                    error=error,
                )
                _unanswered(
                    channel.basic_reject(
                        delivery_tag=message.delivery_tag, requeue=False
                    )
                )
                return
            try:
                # Held (unacknowledged) for a growing pause, then sent again.
                await deferLater(self._reactor, self.retry_delay * 2 ** (attempts - 1))
                await self._publish(event, attempts, queue=subscription.declared)
            except Exception:
                _unanswered(
                    channel.basic_nack(delivery_tag=message.delivery_tag, requeue=True)
                )
                return
        _unanswered(channel.basic_ack(delivery_tag=message.delivery_tag))


def _unanswered(sent: Any) -> None:
    """An ack, nack or reject: the broker does not answer them; if the
    channel is gone the message is delivered again on the next connection,
    so its failure is only noted."""
    if isinstance(sent, Deferred):
        sent.addErrback(
            lambda f: log.info("acknowledging a message failed: {e}", e=f.value)
        )


def _envelope(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "topic": event.topic,
        "owner_id": event.owner_id,
        "created_at": event.created_at,
        "payload": event.payload,
    }


def _event(envelope: dict[str, Any]) -> Event:
    return Event(
        envelope["topic"],
        envelope["payload"],
        envelope.get("owner_id"),
        envelope.get("created_at", 0.0),
        envelope.get("id", 0),
    )


async def _value(value: Any) -> Any:
    return value
