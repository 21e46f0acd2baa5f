"""Presenting a file (seed 004's slideshow): the owner moves, listeners follow.

``POST /files/{id}/control {"current": n}`` (the owner, or an admin; slides
are numbered 1..n) sends ``{"current": n, "updated": ...}`` to every
listener on ``/files/{id}/listen``, by WebSocket (``Upgrade: websocket``)
or Server-Sent Events; ``GET /files/{id}/control`` gives the latest, with
the slides as URLs that need no token. Listeners are the owner (token in
``?access_token=``) or holders of one of the file's share links
(``?share=<token>``, see api/shares.py); to anyone else the file is a 404,
as everywhere. A revoked share link ends the streams opened with it.
Changes travel as ``slideshow.control`` and ``share.revoked`` events
through the bus, so every uploadd process behind the same broker tells its
own listeners.
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
from uploadd.api.access import file_of, principal_of
from uploadd.api.http import arg, base_url, json_body, read_fields, timestamp
from uploadd.api.live import Follower, LiveHub
from uploadd.auth.tokens import Action, TokenIssuer
from uploadd.cluster.locator import Locator
from uploadd.events import topics
from uploadd.events.relay import OutboxRelay
from uploadd.renditions import slides_of
from uploadd.shares import ShareLinks
from uploadd.store.interface import Event, FileRecord, IMetadataStore, Share

#: The WebSocket close code a listener gets when its share link is revoked.
REVOKED = 4403


class _Listener(WebSocketServerProtocol):
    """One WebSocket follower of a file's slides."""

    hub: LiveHub
    file_id: str
    share_id: str | None

    def onOpen(self) -> None:
        self.follower = Follower(self.move, self.revoked, self.share_id)
        self.hub.follow(self.file_id, self.follower)

    def move(self, message: dict[str, Any]) -> None:
        self.sendMessage(json.dumps(message).encode("utf-8"), isBinary=False)

    def revoked(self) -> None:
        self.sendClose(REVOKED, "the share link was revoked")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        follower = getattr(self, "follower", None)
        if follower is not None:
            self.hub.unfollow(self.file_id, follower)


def slide_number(value: Any, count: int) -> int:
    """``value`` as a slide of a deck of ``count``: 400 if it is no whole
    number, 422 if it is outside 1..count."""
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise problems.bad_request("current is a slide number, from 1")
    if not 1 <= value <= count:
        shown = f"1..{count}" if count else "none yet"
        raise problems.Problem(
            422,
            f"slide {value} is outside the deck (its slides: {shown})",
            extra={"current": value, "slides": count},
        )
    return value


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
    _links: ShareLinks
    _public_url: str = ""

    async def _viewer(
        self, request: IRequest, file_id: str
    ) -> tuple[FileRecord, Share | None]:
        """The file, for its owner or an admin (no share), or for the holder
        of one of its share links (``?share=``); else 401 without a token,
        and 404 for anyone else, as for a file that does not exist."""
        token = arg(request, "share")
        if token is None:
            principal = principal_of(self._tokens, request, Action.READ)
            return await file_of(self._store, principal, file_id), None
        record = await self._store.get_file(file_id)
        share = await self._links.check(token, file_id) if record else None
        if record is None or share is None:
            raise problems.not_found(
                f"no such file: {file_id}, or the share link was revoked"
            )
        return record, share

    @app.route("/files/<file_id>/control", methods=["POST"])
    async def control(self, request: IRequest, file_id: str) -> bytes:
        principal = principal_of(self._tokens, request, Action.READ)
        record = await file_of(self._store, principal, file_id)
        slides = await slides_of(self._store, file_id)
        current = slide_number(read_fields(request).get("current"), len(slides))
        state = {
            "file_id": file_id,
            "current": current,
            "updated": timestamp(self._clock.seconds()),
        }
        await self._store.add_events(
            [
                Event(
                    topics.SLIDESHOW_CONTROL,
                    state,
                    record.owner_id,
                    self._clock.seconds(),
                )
            ]
        )
        self._relay.kick()
        self._hub.slides[file_id] = state
        return json_body(
            request, 200, {"current": current, "updated": state["updated"]}
        )

    @app.route("/files/<file_id>/control", methods=["GET"])
    async def state(self, request: IRequest, file_id: str) -> bytes:
        record, share = await self._viewer(request, file_id)
        state = self._hub.slides.get(file_id, {"current": 1, "updated": None})
        base = base_url(request, self._public_url)
        slides = []
        for output in await slides_of(self._store, file_id):
            # A share's holder gets URLs that stop working with the share.
            access = (
                f"share={quote(arg(request, 'share') or '')}"
                if share is not None
                else self._locator.sign(output)
            )
            slides.append(f"{base}/files/{quote(output.id)}/content?{access}")
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
        _, share = await self._viewer(request, file_id)
        share_id = share.id if share is not None else None
        if (request.getHeader(b"upgrade") or b"").lower() == b"websocket":
            factory = WebSocketServerFactory()
            listener: Any = type(
                "Listener",
                (_Listener,),
                {"hub": self._hub, "file_id": file_id, "share_id": share_id},
            )
            factory.protocol = listener
            return WebSocketResource(factory)
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.write(b": following\n\n")
        ended: Deferred[None] = Deferred()

        def send(message: dict[str, Any]) -> None:
            request.write(f"event: control\ndata: {json.dumps(message)}\n\n".encode())

        def end() -> None:
            request.write(b"event: revoked\ndata: {}\n\n")
            ended.callback(None)

        follower = Follower(send, end, share_id)
        self._hub.follow(file_id, follower)
        try:
            # Open until the client leaves (Klein cancels) or the share goes.
            await ended
        finally:
            self._hub.unfollow(file_id, follower)
        return b""
