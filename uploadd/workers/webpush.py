"""Web Push (RFC 8030): a user's events of interest, as notifications on the
browsers the user subscribed.

By default the event is ``transcode.done``: one of a file's renditions is
ready. Its notification is a small JSON object (:func:`notification`: title
and text to show, the file's id and name, which rendition and how many
outputs, the page to open) encrypted for each subscription (RFC 8291,
:mod:`uploadd.workers.ece`) and POSTed to its push service with
``Authorization: vapid ...`` (RFC 8292, :mod:`uploadd.workers.vapid`),
``TTL``, ``Urgency``, ``Topic`` and ``Content-Encoding: aes128gcm``, through
the webhook target checks (public addresses only unless ``[push]
allow_private``), never blocking the reactor.

What the push service answers decides what follows:

- 2xx: delivered.
- 404 or 410: the subscription is gone (the browser dropped it, or it
  expired): it is forgotten.
- 429, 5xx or no answer: the handler fails, so the bus retries it with
  growing delays and dead-letters it in the end, as for webhooks. This
  worker does not send a message again to a subscription that took it, and
  a repeat from elsewhere replaces the first on the device (same ``tag``).
- any other 4xx (a key the push service refuses, a body too large) or an
  address that is not public: a retry cannot help; it is logged and in the
  admin console's failures, and not retried.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections import OrderedDict
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from uploadd.events import topics
from uploadd.events.bus import IEventBus, matches
from uploadd.failures import FailureLog
from uploadd.renditions import SLIDES
from uploadd.store.interface import Event, IMetadataStore, PushSubscription
from uploadd.workers.ece import BadKeys, b64url, browser_keys, encrypt
from uploadd.workers.targets import RefusedTarget
from uploadd.workers.vapid import Vapid
from uploadd.workers.webhooks import Poster

log = Logger()

#: Longest file name a notification carries (the payload has a size limit).
NAME_LIMIT = 200


class PushFailed(Exception):
    """A push service could not take a message for now; the bus will retry."""


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    GONE = "gone"
    RETRY = "retry"
    REFUSED = "refused"


def notification(event: Event, base_url: str = "") -> dict[str, Any]:
    """What the service worker shows for ``event``: ``title``, ``body``,
    ``url`` (of the page; relative unless ``base_url``) and ``tag`` (a
    repeat with the same tag replaces the notification), with the facts."""
    payload = event.payload
    file_id = str(payload.get("file_id") or "")
    name = str(payload.get("filename") or file_id)
    if len(name) > NAME_LIMIT:
        name = name[: NAME_LIMIT - 1] + "…"
    profile = payload.get("profile")
    outputs = len(payload.get("outputs") or ())
    page = "/#/library"
    if event.topic == topics.TRANSCODE_DONE:
        title = f"{name} is ready"
        made = f"{outputs} slides" if profile == SLIDES else "ready to download"
        body = f"{profile}: {made}"
        if profile == SLIDES:
            page = f"/#/slides/{file_id}"
    elif event.topic == topics.TRANSCODE_FAILED:
        title = f"{name}: {profile} failed"
        body = str(payload.get("error") or "the transcode failed")[:NAME_LIMIT]
    else:
        title = f"{name}: {event.topic}"
        body = event.topic
    return {
        "title": title,
        "body": body,
        "url": base_url.rstrip("/") + page,
        "tag": f"{file_id}/{profile}" if profile else file_id or event.topic,
        "topic": event.topic,
        "event_id": event.id,
        "file_id": file_id,
        "filename": name,
        "profile": profile,
        "state": payload.get("state"),
        "outputs": outputs,
    }


def push_topic(tag: str) -> str:
    """RFC 8030's ``Topic`` for a tag: a message waiting at the push service
    is replaced by a newer one with the same topic (32 base64url characters
    at most)."""
    return b64url(hashlib.sha256(tag.encode()).digest())[:32]


@attrs.define
class WebPusher:
    _store: IMetadataStore
    _clock: IReactorTime
    _post: Poster
    _vapid: Vapid
    patterns: tuple[str, ...] = (topics.TRANSCODE_DONE,)
    #: Seconds a push service keeps a message for an offline browser.
    ttl: int = 86400
    #: The page's base URL in notifications ('' keeps them relative: the
    #: service worker resolves them against its own origin).
    base_url: str = ""
    failures: FailureLog | None = None
    #: (event id, subscription id) of recent messages a push service took.
    _sent: OrderedDict[tuple[int, str], None] = attrs.field(factory=OrderedDict)
    remember: int = 10_000

    def attach(self, bus: IEventBus, concurrency: int | None = None) -> None:
        bus.subscribe("push.webpush", "#", self.handle, concurrency)

    async def handle(self, event: Event) -> None:
        if event.owner_id is None:
            return
        if not any(matches(pattern, event.topic) for pattern in self.patterns):
            return
        subscriptions = await self._store.push_subscriptions_of(event.owner_id)
        if not subscriptions:
            return
        shown = notification(event, self.base_url)
        payload = json.dumps(shown, ensure_ascii=False, separators=(",", ":"))
        waiting = []
        for subscription in subscriptions:
            if (event.id, subscription.id) in self._sent:
                continue
            outcome = await self._send(subscription, event, payload.encode(), shown)
            if outcome is Outcome.RETRY:
                waiting.append(subscription.id)
        if waiting:
            raise PushFailed(
                f"event {event.id} not taken for subscriptions {', '.join(waiting)}"
            )

    async def _send(
        self,
        subscription: PushSubscription,
        event: Event,
        payload: bytes,
        shown: dict[str, Any],
    ) -> Outcome:
        try:
            p256dh, auth = browser_keys(subscription.p256dh, subscription.auth)
        except BadKeys as bad:
            return self._failed(subscription, event, str(bad), Outcome.REFUSED)
        headers = {
            "Authorization": self._vapid.authorization(
                subscription.endpoint, self._clock.seconds()
            ),
            "TTL": str(self.ttl),
            "Urgency": "normal",
            "Topic": push_topic(shown["tag"]),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        body = encrypt(payload, p256dh, auth)
        try:
            status = await self._post(subscription.endpoint, body, headers)
        except RefusedTarget as refused:
            return self._failed(subscription, event, str(refused), Outcome.REFUSED)
        except Exception as failure:
            reason = f"{type(failure).__name__}: {failure}"
            return self._failed(subscription, event, reason, Outcome.RETRY)
        if 200 <= status < 300:
            self._remember((event.id, subscription.id))
            log.info(
                "pushed {topic} of event {event_id} to subscription {id}",
                topic=event.topic,
                event_id=event.id,
                id=subscription.id,
            )
            return Outcome.DELIVERED
        if status in (404, 410):
            await self._store.delete_push_subscription(subscription.id)
            log.info(
                "push subscription {id} is gone (HTTP {status}): forgotten",
                id=subscription.id,
                status=status,
            )
            return Outcome.GONE
        retry = status == 429 or status >= 500
        outcome = Outcome.RETRY if retry else Outcome.REFUSED
        return self._failed(subscription, event, f"HTTP {status}", outcome)

    def _failed(
        self,
        subscription: PushSubscription,
        event: Event,
        reason: str,
        outcome: Outcome,
    ) -> Outcome:
        if self.failures is not None:
            self.failures.add(
                "push",
                reason,
                file_id=event.payload.get("file_id"),
                subscription_id=subscription.id,
                event_id=event.id,
            )
        log.warn(
            "push subscription {id} did not take event {event_id} ({then}): {reason}",
            id=subscription.id,
            event_id=event.id,
            then="will retry" if outcome is Outcome.RETRY else "not retried",
            reason=reason,
        )
        return outcome

    def _remember(self, key: tuple[int, str]) -> None:
        self._sent[key] = None
        while len(self._sent) > self.remember:
            self._sent.popitem(last=False)
