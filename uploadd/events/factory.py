"""The one place an event bus is made from ``[amqp]``: RabbitMQ when
``url`` is set, else the in-process bus. Its owner starts and stops it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from noded.reactor import IReactor
from uploadd.events.amqp import AmqpAddress, AmqpBus
from uploadd.events.bus import IEventBus, InProcessBus

if TYPE_CHECKING:
    from uploadd.config import AmqpSection


def open_bus(settings: AmqpSection, reactor: IReactor) -> IEventBus:
    if settings.url:
        return AmqpBus(
            reactor,
            AmqpAddress.parse(settings.url),
            settings.exchange,
            settings.prefetch,
            settings.max_attempts,
            settings.queue_type,
        )
    return InProcessBus(reactor, max_attempts=settings.max_attempts)
