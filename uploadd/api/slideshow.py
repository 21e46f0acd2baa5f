"""Presenting a file (seed 004's slideshow): the owner moves, listeners follow.

``POST /files/{id}/control {"current": n}`` (the owner only) sends
``{"current": n, "updated": ...}`` to every listener on
``/files/{id}/listen``, by WebSocket (``Upgrade: websocket``, token in
``?access_token=``) or Server-Sent Events; ``GET /files/{id}/control`` gives
any signed-in viewer the latest, with the slides as signed URLs (viewers
need not own the file to see it presented). Changes travel as
``slideshow.control`` events through the bus, so every uploadd process
behind the same broker tells its own listeners.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import attrs
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from uploadd.api import problems
from uploadd.api.access import principal_of
from uploadd.api.http import (
    base_url,
    json_body,
    read_fields,
    timestamp,
    whole_number,
)
from uploadd.api.live import LiveHub
from uploadd.auth.tokens import Action, TokenIssuer
from uploadd.cluster.locator import Locator
from uploadd.events.relay import OutboxRelay
from uploadd.renditions import READY
from uploadd.store.interface import Event, IMetadataStore


class _Listener(WebSocketServerProtocol):
    """One WebSocket follower of a file's slides."""

    hub: LiveHub
    file_id: str

    def onOpen(self) -> None:
        self.hub.follow(self.file_id, self.move)

    def move(self, message: dict[str, Any]) -> None:
        self.sendMessage(json.dumps(message).encode("utf-8"), isBinary=False)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.hub.unfollow(self.file_id, self.move)


@attrs.define(slots=False)
class SlideshowAPI:
    app = Klein()
    problems.install(app)

    _store: IMetadataStore
    _tokens: TokenIssuer
    _hub: LiveHub
    _relay: OutboxRelay
    _clock: IReactorTime
    _locator: Locator
    _public_url: str = ""

    @app.route("/files/<file_id>/control", methods=["POST"])
    async def control(self, request: IRequest, file_id: str) -> bytes:
        principal = principal_of(self._tokens, request, Action.READ)
        record = await self._store.get_file(file_id)
        if record is None:
            raise problems.not_found(f"no such file: {file_id}")
        if record.owner_id != principal.user_id:
            raise problems.forbidden("only the file's owner presents it")
        current = whole_number(
            read_fields(request).get("current"), 0, "current is a slide number from 0"
        )
        state = {
            "file_id": file_id,
            "current": current,
            "updated": timestamp(self._clock.seconds()),
        }
        await self._store.add_events(
            [Event("slideshow.control", state, record.owner_id, self._clock.seconds())]
        )
        self._relay.kick()
        self._hub.slides[file_id] = state
        return json_body(
            request, 200, {"current": current, "updated": state["updated"]}
        )

    @app.route("/files/<file_id>/control", methods=["GET"])
    async def state(self, request: IRequest, file_id: str) -> bytes:
        principal_of(self._tokens, request, Action.READ)
        record = await self._store.get_file(file_id)
        if record is None:
            raise problems.not_found(f"no such file: {file_id}")
        state = self._hub.slides.get(file_id, {"current": 0, "updated": None})
        base = base_url(request, self._public_url)
        slides = []
        found = await self._store.get_rendition(file_id, "pdf-slides")
        for output_id in found.outputs if found and found.state == READY else ():
            output = await self._store.get_file(output_id)
            if output is not None:
                signed = self._locator.sign(output)
                slides.append(f"{base}/files/{quote(output.id)}/content?{signed}")
        return json_body(
            request,
            200,
            {
                "current": state["current"],
                "updated": state["updated"],
                "filename": record.filename,
                "owner": record.owner_id,
                "slides": slides,
            },
        )

    @app.route("/files/<file_id>/listen", methods=["GET"])
    async def listen(self, request: IRequest, file_id: str) -> Any:
        principal_of(self._tokens, request, Action.READ)
        if (request.getHeader(b"upgrade") or b"").lower() == b"websocket":
            factory = WebSocketServerFactory()
            listener: Any = type(
                "Listener", (_Listener,), {"hub": self._hub, "file_id": file_id}
            )
            factory.protocol = listener
            return WebSocketResource(factory)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.write(b": following\n\n")

        def send(message: dict[str, Any]) -> None:
            request.write(f"event: control\ndata: {json.dumps(message)}\n\n".encode())

        self._hub.follow(file_id, send)
        try:
            await Deferred()  # open until the client leaves (Klein cancels)
        finally:
            self._hub.unfollow(file_id, send)
