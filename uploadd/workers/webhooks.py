"""Webhook pushes: every event a user's webhook asks for, POSTed as signed JSON.

Signed the Standard Webhooks way (https://www.standardwebhooks.com/):
``webhook-id`` is the delivery's id (event id and webhook id; the same on
every retry, so receivers can drop repeats), ``webhook-timestamp`` the Unix
time of the attempt, and ``webhook-signature`` is ``v1,`` and the base64
HMAC-SHA256 of ``<id>.<timestamp>.<body>`` under the webhook's secret
(``whsec_`` and the base64 of the key). The id and the time are inside the
signed content, so a receiver that refuses old timestamps and ids it has
seen cannot be fed a replay. A webhook that already took an event is not
sent it again. A failed delivery fails the
bus handler, so the bus retries with growing delays and dead-letters it in
the end; every attempt is in the delivery log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from noded.reactor import IReactor
from uploadd.events.bus import IEventBus, matches
from uploadd.failures import FailureLog
from uploadd.metrics import Metrics
from uploadd.store.interface import Delivery, Event, IMetadataStore, Webhook
from uploadd.workers.targets import PublicEndpoints

log = Logger()

Poster = Callable[[str, bytes, dict[str, str]], Awaitable[int]]


class DeliveryFailed(Exception):
    """At least one webhook did not take the event; the bus will retry."""


def new_secret() -> str:
    """A webhook secret as Standard Webhooks writes one: ``whsec_<base64>``."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def signing_key(secret: str) -> bytes:
    """The HMAC key of a webhook secret: the bytes a ``whsec_`` secret
    encodes, or the text itself for webhooks made before such secrets."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode("utf-8")


def signature(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` of one attempt."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def treq_poster(
    reactor: IReactor,
    timeout: float = 10.0,
    allow_private: bool = False,
    what: str = "webhooks",
    setting: str = "[webhooks] allow_private",
) -> Poster:
    """POST with treq on ``reactor``; the status code, or an exception
    (RefusedTarget for a name that resolves to no public address, unless
    ``allow_private``; its message names ``what`` and ``setting``).
    Redirects are not followed: a 3xx is a failure."""
    from treq.client import HTTPClient
    from twisted.web.client import Agent

    endpoints = PublicEndpoints(
        reactor, allow_private, timeout, what=what, setting=setting
    )
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


def without_credentials(url: str) -> str:
    """``url`` without a user name or password in it: the receiver as the
    admin console names it."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


@attrs.define
class WebhookPusher:
    _store: IMetadataStore
    _clock: IReactorTime
    _post: Poster
    failures: FailureLog | None = None
    metrics: Metrics = attrs.field(factory=Metrics, kw_only=True)

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
        sent_at = int(self._clock.seconds())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "uploadd-webhooks",
            "X-Uploadd-Event": event.topic,
            "webhook-id": delivery_id,
            "webhook-timestamp": str(sent_at),
            "webhook-signature": signature(hook.secret, delivery_id, sent_at, body),
        }
        status: int | None = None
        try:
            status = await self._post(hook.url, body, headers)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"
        outcome = (
            "unreachable" if status is None else "refused" if error else "delivered"
        )
        self.metrics.deliveries.labels(outcome).inc()
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
            self.failures.add(
                "webhook",
                error,
                webhook_id=hook.id,
                event_id=event.id,
                url=without_credentials(hook.url),
            )
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
