"""``GET /events``: the user's events as Server-Sent Events, for browsers.

Each event is one SSE message (``id``, ``event`` = topic, ``data`` = JSON);
a comment every ``heartbeat`` seconds keeps proxies from closing an idle
stream. A user sees only their own events; an admin sees everyone's. A
client that comes back with ``Last-Event-ID`` first gets what it missed,
from the published events the store keeps (``[events] replay``).
"""

from __future__ import annotations

import json
from collections import OrderedDict
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
from uploadd.store.interface import Event, IMetadataStore

log = Logger()


def sse(event: Event) -> bytes:
    """One Server-Sent Events message."""
    data = json.dumps({"topic": event.topic, **event.payload})
    return f"id: {event.id}\nevent: {event.topic}\ndata: {data}\n\n".encode()


#: How many event ids the hub remembers to drop a second delivery of one.
RECENT = 4096


@attrs.define(eq=False)
class _Listener:
    request: IRequest
    principal: Principal
    #: Live messages held while missed ones are replayed (None: none are).
    held: list[tuple[int, bytes]] | None = None


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
    _recent: OrderedDict[int, None] = attrs.field(factory=OrderedDict)

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
        if event.id:
            # The bus delivers at least once: an event whose publication the
            # broker took but could not confirm (it went down) is published
            # again. Streams get it once.
            if event.id in self._recent:
                return
            self._recent[event.id] = None
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
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
                self.send(listener, message, event.id)

    def send(self, listener: _Listener, message: bytes, event_id: int = 0) -> None:
        """Write to one stream; a stream whose client is gone is dropped
        rather than failing the delivery, which the bus would then repeat
        to every other stream."""
        if listener.held is not None:
            listener.held.append((event_id, message))
            return
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
            self.send(listener, b": keep-alive\n\n")


@attrs.define(slots=False)
class LiveAPI:
    app = Klein()
    problems.install(app)

    _hub: LiveHub
    _tokens: TokenIssuer
    _store: IMetadataStore

    @app.route("/events", methods=["GET"])
    async def events(self, request: IRequest) -> Any:
        principal = principal_of(self._tokens, request, Action.READ)
        last = last_event_id(request)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        request.write(b": connected\n\n")
        endless(request)
        # Live events from now on are held while the missed ones are read,
        # so none is lost between the two and none is sent twice.
        listener = _Listener(request, principal, held=[] if last else None)
        self._hub.add(listener)
        try:
            if last is not None:
                await self._replay(listener, last)
            # The stream stays open until the client leaves; Klein then
            # cancels this wait.
            await Deferred()
        finally:
            self._hub.remove(listener)

    async def _replay(self, listener: _Listener, after: int) -> None:
        """Send the events the client missed since ``after`` (oldest first,
        up to REPLAY of them), then the live ones held meanwhile."""
        who = listener.principal
        owner = None if who.is_admin else who.user_id
        missed = await self._store.events_after(after, owner, REPLAY)
        held, listener.held = listener.held or [], None
        newest = after
        for event in missed:
            self._hub.send(listener, sse(event), event.id)
            newest = event.id
        for event_id, message in held:
            if event_id == 0 or event_id > newest:
                self._hub.send(listener, message, event_id)


#: The most missed events one reconnection replays.
REPLAY = 1000


def last_event_id(request: IRequest) -> int | None:
    """The id of the last event the client saw (the EventSource sends
    ``Last-Event-ID`` when it reconnects; ``?last_event_id=`` for a client
    that cannot set headers), or None."""
    header = request.getHeader(b"last-event-id")
    raw = header.decode("latin-1") if header else None
    if raw is None and request.args:
        values = request.args.get(b"last_event_id") or []
        raw = values[0].decode("latin-1") if values else None
    if raw is None:
        return None
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None
