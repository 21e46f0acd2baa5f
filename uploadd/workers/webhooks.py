"""Webhook pushes: every event a user's webhook asks for, POSTed as signed JSON.

The body is signed with HMAC-SHA256 under the webhook's secret, sent as
``X-Uploadd-Signature: sha256=<hex>``. A delivery's id (event id and webhook
id) stays the same on every retry, so receivers can drop repeats; a webhook
that already took an event is not sent it again. A failed delivery fails the
bus handler, so the bus retries with growing delays and dead-letters it in
the end; every attempt is in the delivery log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from uploadd.events.bus import IEventBus, matches
from uploadd.failures import FailureLog
from uploadd.store.interface import Delivery, Event, IMetadataStore, Webhook
from uploadd.workers.targets import PublicEndpoints

log = Logger()

Poster = Callable[[str, bytes, dict[str, str]], Awaitable[int]]


class DeliveryFailed(Exception):
    """At least one webhook did not take the event; the bus will retry."""


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def treq_poster(
    reactor: Any, timeout: float = 10.0, allow_private: bool = False
) -> Poster:
    """POST with treq on ``reactor``; the status code, or an exception
    (RefusedTarget for a name that resolves to no public address, unless
    ``allow_private``). Redirects are not followed: a 3xx is a failure."""
    from treq.client import HTTPClient
    from twisted.web.client import Agent

    endpoints = PublicEndpoints(reactor, allow_private, timeout)
    client = HTTPClient(Agent.usingEndpointFactory(reactor, endpoints))

    async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        sent: dict[bytes | str, bytes | str] = {k: v for k, v in headers.items()}
        response = await client.post(
            url, data=body, headers=sent, timeout=timeout, allow_redirects=False
        )
        await response.content()
        code: int = response.code
        return code

    return post


@attrs.define
class WebhookPusher:
    _store: IMetadataStore
    _clock: IReactorTime
    _post: Poster
    failures: FailureLog | None = None

    def attach(self, bus: IEventBus, concurrency: int | None = None) -> None:
        bus.subscribe("push.webhooks", "#", self.handle, concurrency)

    async def handle(self, event: Event) -> None:
        if event.owner_id is None:
            return
        failed = []
        for hook in await self._store.webhooks_of(event.owner_id):
            wanted = any(matches(pattern, event.topic) for pattern in hook.events)
            if wanted and not await self._deliver(hook, event):
                failed.append(hook.id)
        if failed:
            raise DeliveryFailed(f"event {event.id} not taken by {', '.join(failed)}")

    async def _deliver(self, hook: Webhook, event: Event) -> bool:
        delivery_id = f"{event.id}-{hook.id}"
        previous = await self._store.get_delivery(delivery_id)
        if previous is not None and previous.delivered:
            return True
        body = json.dumps(
            {
                "id": delivery_id,
                "event": event.topic,
                "event_id": event.id,
                "created_at": event.created_at,
                "data": event.payload,
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "uploadd-webhooks",
            "X-Uploadd-Event": event.topic,
            "X-Uploadd-Delivery": delivery_id,
            "X-Uploadd-Signature": signature(hook.secret, body),
        }
        status: int | None = None
        try:
            status = await self._post(hook.url, body, headers)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"
        attempts = (previous.attempts if previous else 0) + 1
        await self._store.save_delivery(
            Delivery(
                delivery_id,
                hook.id,
                event.id,
                event.topic,
                attempts,
                status,
                error,
                error is None,
                self._clock.seconds(),
            )
        )
        if error and self.failures is not None:
            self.failures.add("webhook", error, webhook_id=hook.id, event_id=event.id)
        if error:
            log.warn(
                "webhook {hook_id} refused event {event_id} "
                "(attempt {attempts}): {error}",
                hook_id=hook.id,
                event_id=event.id,
                attempts=attempts,
                error=error,
            )
        return error is None
