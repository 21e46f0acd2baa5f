"""Downloads from a node: ``GET /files/<id>?expires=&name=&type=&sig=``.

Only a URL signed by uploadd (with the cluster secret) and not yet expired
is served: 403 otherwise, 404 for a file this node does not hold. Byte
ranges work as on uploadd itself. Every error is problem+json. ``GET
/health`` answers 200 while the node serves, for load balancers and
container health checks, as uploadd's does.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from noded import __version__, problems
from noded.channel import GuardedSite, ProblemRequest
from noded.config import HttpSection
from noded.download import BlobResource
from noded.drain import Drain, DrainedRequest, drained
from noded.files import NodeFiles
from noded.problems import Problem
from noded.signing import BadSignature, verify


class Downloads(Resource):
    isLeaf = True

    def __init__(self, files: NodeFiles, key: bytes, clock: IReactorTime) -> None:
        super().__init__()
        self._files = files
        self._key = key
        self._clock = clock

    def render(self, request: IRequest) -> bytes | int:
        if request.method not in (b"GET", b"HEAD"):
            return problems.apply(
                request,
                Problem(
                    405,
                    "a node serves downloads only: GET or HEAD",
                    headers={"Allow": "GET, HEAD"},
                ),
            )
        rendered: bytes | int = super().render(request)
        return rendered

    def render_GET(self, request: IRequest) -> bytes | int:
        segments = [s.decode("utf-8", "replace") for s in request.postpath]
        if segments == ["health"]:
            request.setHeader(b"content-type", b"application/json")
            request.setHeader(b"cache-control", b"no-store")
            return json.dumps({"status": "ok", "version": __version__}).encode()
        if len(segments) != 2 or segments[0] != "files":
            return problems.apply(request, problems.not_found("no such resource"))
        file_id = segments[1]
        query = {
            k.decode(): v[-1].decode("utf-8", "replace")
            for k, v in request.args.items()
        }
        try:
            grant = verify(self._key, file_id, query, self._clock.seconds())
        except BadSignature as error:
            return problems.apply(request, Problem(403, str(error)))
        try:
            path = self._files.path(file_id)
        except Exception:
            return problems.apply(request, problems.not_found("no such file"))
        if not path.exists():
            return problems.apply(
                request, problems.not_found(f"no such file: {file_id}")
            )
        served: Any = BlobResource(
            path, grant.name, grant.content_type, grant.sha256 or None
        )
        rendered: bytes | int = served.render(request)
        return rendered

    render_HEAD = render_GET


class NodeRequest(DrainedRequest, ProblemRequest):
    """A download: known to the drain at shutdown, its failures problem+json."""


def download_site(
    files: NodeFiles,
    key: bytes,
    reactor: IReactorTime,
    http: HttpSection,
    drain: Drain,
) -> GuardedSite:
    """The Site serving a node's downloads: slow clients timed out, every
    error (a 405 and a failure too) problem+json, requests drained at stop."""
    return GuardedSite(
        Downloads(files, key, reactor),
        requestFactory=drained(NodeRequest, drain),
        timeout=http.idle_timeout,
        header_timeout=http.header_timeout,
        reactor=reactor,
    )
