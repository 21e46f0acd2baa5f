"""``/webhooks``: a user's HTTP endpoints for events, and their delivery log."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlparse

import attrs
from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from uploadd.api import problems
from uploadd.api.access import principal_of
from uploadd.api.http import empty, int_arg, json_body, read_fields, timestamp
from uploadd.auth.tokens import Action, Principal, TokenIssuer
from uploadd.store.interface import Delivery, IMetadataStore, Webhook
from uploadd.workers.targets import url_refusal
from uploadd.workers.webhooks import new_secret


def document(hook: Webhook, with_secret: bool = False) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": hook.id,
        "url": hook.url,
        "events": list(hook.events),
        "created_at": timestamp(hook.created_at),
    }
    if with_secret:
        shown["secret"] = hook.secret
    return shown


def delivery_document(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event": delivery.topic,
        "attempts": delivery.attempts,
        "status": delivery.status,
        "error": delivery.error,
        "delivered": delivery.delivered,
        "updated_at": timestamp(delivery.updated_at),
    }


@attrs.define(slots=False)
class WebhooksAPI:
    app = Klein()
    problems.install(app)

    _store: IMetadataStore
    _tokens: TokenIssuer
    _clock: IReactorTime
    _allow_private: bool = False

    async def _mine(self, principal: Principal, hook_id: str) -> Webhook:
        for hook in await self._store.webhooks_of(principal.user_id):
            if hook.id == hook_id:
                return hook
        raise problems.not_found(f"no such webhook: {hook_id}")

    @app.route("/webhooks", methods=["POST"])
    async def create(self, request: IRequest) -> bytes:
        principal = principal_of(self._tokens, request, Action.LIST)
        fields = read_fields(request)
        url = str(fields.get("url") or "")
        try:
            parts = urlparse(url)
        except ValueError:  # an unclosed [ of an IPv6 address
            raise problems.bad_request("url is not a URL", url=url) from None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise problems.bad_request(
                "url must be an http:// or https:// URL", url=url
            )
        refused = None if self._allow_private else url_refusal(url)
        if refused:
            raise problems.Problem(
                422,
                f"{refused}: webhooks go to public addresses only",
                extra={"url": url},
            )
        events = fields.get("events") or ["#"]
        if isinstance(events, str):
            events = events.replace(",", " ").split()
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise problems.bad_request("events is a list of topic patterns like file.*")
        hook = Webhook(
            uuid.uuid4().hex,
            principal.user_id,
            url,
            tuple(events),
            new_secret(),
            self._clock.seconds(),
        )
        await self._store.add_webhook(hook)
        return json_body(request, 201, document(hook, with_secret=True))

    @app.route("/webhooks", methods=["GET"])
    async def index(self, request: IRequest) -> bytes:
        principal = principal_of(self._tokens, request, Action.LIST)
        hooks = await self._store.webhooks_of(principal.user_id)
        return json_body(request, 200, {"results": [document(h) for h in hooks]})

    @app.route("/webhooks/<hook_id>", methods=["DELETE"])
    async def delete(self, request: IRequest, hook_id: str) -> bytes:
        principal = principal_of(self._tokens, request, Action.LIST)
        hook = await self._mine(principal, hook_id)
        await self._store.delete_webhook(hook.id)
        return empty(request, 204)

    @app.route("/webhooks/<hook_id>/deliveries", methods=["GET"])
    async def deliveries(self, request: IRequest, hook_id: str) -> bytes:
        principal = principal_of(self._tokens, request, Action.LIST)
        hook = await self._mine(principal, hook_id)
        limit = int_arg(request, "limit", 100, 1, 1000)
        found = await self._store.deliveries_of(hook.id, limit)
        return json_body(
            request, 200, {"results": [delivery_document(d) for d in found]}
        )
