"""``GET /events``: the user's events as Server-Sent Events, for browsers.

Each event is one SSE message (``id``, ``event`` = topic, ``data`` = JSON);
a comment every ``heartbeat`` seconds keeps proxies from closing an idle
stream. A user sees only their own events; an admin sees everyone's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from noded.drain import endless
from uploadd.api import problems
from uploadd.api.access import principal_of
from uploadd.auth.tokens import Action, Principal, TokenIssuer
from uploadd.events import topics
from uploadd.events.bus import IEventBus
from uploadd.store.interface import Event

log = Logger()


def sse(event: Event) -> bytes:
    """One Server-Sent Events message."""
    data = json.dumps({"topic": event.topic, **event.payload})
    return f"id: {event.id}\nevent: {event.topic}\ndata: {data}\n\n".encode()


@attrs.define(eq=False)
class _Listener:
    request: IRequest
    principal: Principal


@attrs.define(eq=False)
class Follower:
    """One listener to a file's presenter: how to send it a move, how to end
    it, and the share link it came with (None: the owner or an admin)."""

    send: Callable[[dict[str, Any]], None]
    end: Callable[[], None]
    share_id: str | None = None


@attrs.define
class LiveHub:
    """Fans events from the bus out to the open streams that may see them."""

    _clock: IReactorTime
    heartbeat: float = 15.0
    listeners: set[_Listener] = attrs.field(factory=set)
    followers: dict[str, list[Follower]] = attrs.field(factory=dict)
    slides: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    _beat: LoopingCall | None = None

    def follow(self, file_id: str, follower: Follower) -> None:
        """``follower`` gets every presenter move on ``file_id``, starting now."""
        self.followers.setdefault(file_id, []).append(follower)

    def unfollow(self, file_id: str, follower: Follower) -> None:
        found = self.followers.get(file_id, [])
        if follower in found:
            found.remove(follower)
        if not found:
            self.followers.pop(file_id, None)

    def revoke(self, file_id: str, share_id: str) -> None:
        """End the streams opened with share link ``share_id``."""
        for follower in list(self.followers.get(file_id, [])):
            if follower.share_id == share_id:
                self.unfollow(file_id, follower)
                log.info(
                    "ended a listener of {file_id}: share {share_id} revoked",
                    file_id=file_id,
                    share_id=share_id,
                )
                follower.end()

    def attach(self, bus: IEventBus) -> None:
        # Every instance serves its own /events clients: each needs every event.
        bus.subscribe("live", "#", self.deliver, each_instance=True)

    async def deliver(self, event: Event) -> None:
        if event.topic == topics.SLIDESHOW_CONTROL:
            state = event.payload
            self.slides[state["file_id"]] = state
            move = {"current": state["current"], "updated": state["updated"]}
            for follower in list(self.followers.get(state["file_id"], [])):
                follower.send(move)
        if event.topic == topics.SHARE_REVOKED:
            # Every uploadd behind the same bus ends its own listeners.
            self.revoke(event.payload["file_id"], event.payload["share_id"])
        message = sse(event)
        for listener in list(self.listeners):
            who = listener.principal
            if who.is_admin or event.owner_id == who.user_id:
                self._send(listener, message)

    def _send(self, listener: _Listener, message: bytes) -> None:
        """Write to one stream; a stream whose client is gone is dropped
        rather than failing the delivery, which the bus would then repeat
        to every other stream."""
        try:
            listener.request.write(message)
        except Exception as error:
            log.info("dropped a live stream that is gone: {error}", error=error)
            self.remove(listener)

    def add(self, listener: _Listener) -> None:
        self.listeners.add(listener)
        if self._beat is None:
            self._beat = LoopingCall(self._ping)
            self._beat.clock = self._clock
            self._beat.start(self.heartbeat, now=False)

    def remove(self, listener: _Listener) -> None:
        self.listeners.discard(listener)
        if not self.listeners and self._beat is not None:
            self._beat.stop()
            self._beat = None

    def _ping(self) -> None:
        for listener in list(self.listeners):
            self._send(listener, b": keep-alive\n\n")


@attrs.define(slots=False)
class LiveAPI:
    app = Klein()
    problems.install(app)

    _hub: LiveHub
    _tokens: TokenIssuer

    @app.route("/events", methods=["GET"])
    async def events(self, request: IRequest) -> Any:
        principal = principal_of(self._tokens, request, Action.READ)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        request.write(b": connected\n\n")
        endless(request)
        listener = _Listener(request, principal)
        self._hub.add(listener)
        try:
            # The stream stays open until the client leaves; Klein then
            # cancels this wait.
            await Deferred()
        finally:
            self._hub.remove(listener)
