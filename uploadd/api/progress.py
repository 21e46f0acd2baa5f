"""``GET /progress``: how far an upload named by ``X-Progress-ID`` has come."""

from __future__ import annotations

import attrs
from klein import Klein
from twisted.web.iweb import IRequest

from uploadd.api import problems
from uploadd.api.access import authenticate
from uploadd.api.http import arg, json_body
from uploadd.auth.tokens import TokenIssuer
from uploadd.ingest.progress import ProgressBoard, check_key


@attrs.define(slots=False)
class ProgressAPI:
    app = Klein()
    problems.install(app)

    _tokens: TokenIssuer
    _board: ProgressBoard

    @app.route("/progress", methods=["GET"])
    def by_query(self, request: IRequest) -> bytes:
        key = arg(request, "UploadKey") or arg(request, "X-Progress-ID")
        if not key:
            raise problems.bad_request("name the upload: /progress?UploadKey=<key>")
        return self._show(request, key)

    @app.route("/progress/<key>", methods=["GET"])
    def by_path(self, request: IRequest, key: str) -> bytes:
        return self._show(request, key)

    def _show(self, request: IRequest, key: str) -> bytes:
        principal = authenticate(self._tokens, request.requestHeaders, request.uri)
        entry = self._board.get(check_key(key), principal.user_id)
        if entry is None:
            raise problems.not_found(f"no upload in progress or recently ended: {key}")
        request.setHeader(b"cache-control", b"no-store")
        return json_body(request, 200, entry.document())
