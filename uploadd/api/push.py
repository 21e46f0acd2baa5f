"""``/push``: Web Push for the page. uploadd's VAPID public key (the
``applicationServerKey`` browsers subscribe with), the browsers a user
subscribed, and the service worker that shows their notifications."""

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
from uploadd.api.http import empty, json_body, read_fields, timestamp
from uploadd.api.web import CSP, TYPES, asset
from uploadd.auth.tokens import Action, Principal, TokenIssuer
from uploadd.store.interface import IMetadataStore, PushSubscription
from uploadd.workers.ece import BadKeys, browser_keys
from uploadd.workers.targets import url_refusal

#: Push service URLs are a few hundred characters; this bounds what is kept.
MAX_ENDPOINT = 2048

#: The service worker, in ``uploadd/web/``; served under /push/, so that is
#: its scope.
WORKER = "push-worker.js"


def document(subscription: PushSubscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "endpoint": subscription.endpoint,
        "created_at": timestamp(subscription.created_at),
    }


@attrs.define(slots=False)
class PushAPI:
    app = Klein()
    problems.install(app)

    _store: IMetadataStore
    _tokens: TokenIssuer
    _clock: IReactorTime
    _public_key: str
    _allow_private: bool = False
    _limit: int = 20

    @app.route("/push/key", methods=["GET"])
    def key(self, request: IRequest) -> bytes:
        """The VAPID public key (base64url): public, so no token."""
        return json_body(request, 200, {"public_key": self._public_key})

    @app.route("/push/worker.js", methods=["GET"])
    def worker(self, request: IRequest) -> bytes:
        body = asset(WORKER)
        if body is None:
            raise problems.not_found("the push service worker is not installed")
        request.setHeader(b"content-type", TYPES[".js"])
        request.setHeader(b"content-length", b"%d" % len(body))
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy", CSP)
        return body

    @app.route("/push/subscriptions", methods=["GET"])
    async def index(self, request: IRequest) -> bytes:
        principal = principal_of(self._tokens, request, Action.LIST)
        found = await self._store.push_subscriptions_of(principal.user_id)
        return json_body(request, 200, {"results": [document(s) for s in found]})

    @app.route("/push/subscriptions", methods=["POST"])
    async def subscribe(self, request: IRequest) -> bytes:
        """Keep a browser's PushSubscription (its ``toJSON()``: endpoint and
        keys) for the user. The same endpoint again keeps its id (201 the
        first time, then 200); past the limit the oldest are forgotten."""
        principal = principal_of(self._tokens, request, Action.LIST)
        fields = read_fields(request)
        endpoint = self._endpoint(fields.get("endpoint"))
        keys = fields.get("keys")
        if not isinstance(keys, dict) or not all(
            isinstance(keys.get(name), str) for name in ("p256dh", "auth")
        ):
            raise problems.bad_request(
                "keys must be the subscription's {p256dh, auth} (base64url)"
            )
        try:
            browser_keys(keys["p256dh"], keys["auth"])
        except BadKeys as bad:
            raise problems.bad_request(str(bad)) from None
        mine = await self._store.push_subscriptions_of(principal.user_id)
        known = next((s for s in mine if s.endpoint == endpoint), None)
        subscription = PushSubscription(
            known.id if known else uuid.uuid4().hex,
            principal.user_id,
            endpoint,
            keys["p256dh"].strip(),
            keys["auth"].strip(),
            self._clock.seconds(),
        )
        others = [s for s in mine if s is not known]
        for oldest in others[: max(0, len(others) - self._limit + 1)]:
            await self._store.delete_push_subscription(oldest.id)
        await self._store.add_push_subscription(subscription)
        return json_body(request, 200 if known else 201, document(subscription))

    @app.route("/push/subscriptions/<subscription_id>", methods=["DELETE"])
    async def delete(self, request: IRequest, subscription_id: str) -> bytes:
        principal = principal_of(self._tokens, request, Action.LIST)
        await self._mine(principal, subscription_id)
        await self._store.delete_push_subscription(subscription_id)
        return empty(request, 204)

    async def _mine(
        self, principal: Principal, subscription_id: str
    ) -> PushSubscription:
        for found in await self._store.push_subscriptions_of(principal.user_id):
            if found.id == subscription_id:
                return found
        raise problems.not_found(f"no such push subscription: {subscription_id}")

    def _endpoint(self, value: Any) -> str:
        """A push service URL: https (http too with ``[push] allow_private``),
        at a public address unless that is allowed."""
        if not isinstance(value, str) or not value.strip():
            raise problems.bad_request("endpoint is the push service URL")
        endpoint = value.strip()
        if len(endpoint) > MAX_ENDPOINT:
            raise problems.bad_request(
                f"endpoint is longer than {MAX_ENDPOINT} characters"
            )
        try:
            parts = urlparse(endpoint)
        except ValueError:  # an unclosed [ of an IPv6 address
            raise problems.bad_request("endpoint is not a URL") from None
        schemes = ("https", "http") if self._allow_private else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            raise problems.bad_request(
                "endpoint must be an https:// URL", endpoint=endpoint
            )
        refused = None if self._allow_private else url_refusal(endpoint)
        if refused:
            raise problems.Problem(
                422,
                f"{refused}: push messages go to public addresses only",
                extra={"endpoint": endpoint},
            )
        return endpoint
