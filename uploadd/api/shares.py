"""``/files/{id}/shares``: share links for the people who follow a deck.

``POST`` makes one (201: its id, its token, and the links to hand out);
``GET`` lists them with their tokens; ``DELETE /files/{id}/shares/{share}``
revokes one: its token stops working at once, and listeners connected with
it are disconnected (on every uploadd behind the same bus, through a
``share.revoked`` event). Only the file's owner (or an admin) sees any of
this, with a token whose scopes allow sharing (``write``); to anyone else
the file is a 404.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import attrs
from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from uploadd.api import problems
from uploadd.api.access import file_of, principal_of
from uploadd.api.http import base_url, empty, json_body, timestamp
from uploadd.api.live import LiveHub
from uploadd.auth.tokens import Action, TokenIssuer
from uploadd.events import topics
from uploadd.events.relay import OutboxRelay
from uploadd.shares import ShareLinks
from uploadd.store.interface import Event, FileRecord, IMetadataStore, Share

log = Logger()


@attrs.define(slots=False)
class SharesAPI:
    app = Klein()
    problems.install(app)

    _store: IMetadataStore
    _tokens: TokenIssuer
    _links: ShareLinks
    _hub: LiveHub
    _relay: OutboxRelay
    _clock: IReactorTime
    _public_url: str = ""

    def _document(self, request: IRequest, share: Share) -> dict[str, Any]:
        base = base_url(request, self._public_url)
        token = self._links.token(share)
        file_path = f"{base}/files/{quote(share.file_id)}"
        return {
            "id": share.id,
            "file_id": share.file_id,
            "token": token,
            "created_at": timestamp(share.created_at),
            # The web page follows the deck; the token stays in the
            # fragment, which browsers do not send.
            "link": f"{base}/#/slides/{quote(share.file_id)}/{token}",
            "control_url": f"{file_path}/control?share={token}",
            "listen_url": f"{file_path}/listen?share={token}",
        }

    async def _owned(self, request: IRequest, file_id: str) -> FileRecord:
        principal = principal_of(self._tokens, request, Action.SHARE)
        return await file_of(self._store, principal, file_id)

    @app.route("/files/<file_id>/shares", methods=["POST"])
    async def create(self, request: IRequest, file_id: str) -> bytes:
        record = await self._owned(request, file_id)
        share = await self._links.create(record)
        log.info("shared {file_id} as {share_id}", file_id=file_id, share_id=share.id)
        return json_body(request, 201, self._document(request, share))

    @app.route("/files/<file_id>/shares", methods=["GET"])
    async def index(self, request: IRequest, file_id: str) -> bytes:
        await self._owned(request, file_id)
        found = await self._store.shares_of(file_id)
        return json_body(
            request, 200, {"results": [self._document(request, s) for s in found]}
        )

    @app.route("/files/<file_id>/shares/<share_id>", methods=["DELETE"])
    async def revoke(self, request: IRequest, file_id: str, share_id: str) -> bytes:
        record = await self._owned(request, file_id)
        share = await self._store.get_share(share_id)
        if share is None or share.file_id != file_id:
            raise problems.not_found(f"no such share link: {share_id}")
        payload = {"file_id": file_id, "share_id": share_id}
        event = Event(
            topics.SHARE_REVOKED, payload, record.owner_id, self._clock.seconds()
        )
        if not await self._store.delete_share(share_id, [event]):
            raise problems.not_found(f"no such share link: {share_id}")
        # Here at once; other uploadd processes when the event reaches them.
        self._hub.revoke(file_id, share_id)
        self._relay.kick()
        log.info("revoked share {share_id} of {file_id}", share_id=share_id,
                 file_id=file_id)  # fmt: skip
        return empty(request, 204)
