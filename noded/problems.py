"""RFC 9457 problem details as both daemons write them: the document, its
status and headers, and the answer for a failure nobody expected (logged
with an id; the client is told only the id, never a traceback).

uploadd's HTTP edge (``uploadd/api/problems.py``) builds on this: it maps
the core's errors and Klein's routing errors to problems.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

import attrs
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

log = Logger()

PROBLEM_TYPE = "application/problem+json"
_TITLES = {
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    415: "Unsupported Media Type",
    423: "Locked",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    507: "Insufficient Storage",
}


@attrs.define(auto_exc=True)
class Problem(Exception):
    """An error a client can act on: status, a title and a detail naming the
    cause; ``type`` is the URI of a problem type (RFC 9457 section 3.1.1)
    whose extension members ``extra`` carries, or ``about:blank`` (the
    status says it all; the title is then the status phrase)."""

    #: The media type of :meth:`body` (a protocol with its own error
    #: documents, such as S3's XML, overrides both).
    media_type: ClassVar[str] = PROBLEM_TYPE

    status: int
    detail: str
    title: str = ""
    headers: dict[str, str] = attrs.field(factory=dict)
    extra: dict[str, Any] = attrs.field(factory=dict)
    #: The problem type's URI (RFC 9457 3.1.1); about:blank: the status says it.
    type: str = "about:blank"

    def document(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title or _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            **self.extra,
        }

    def body(self) -> bytes:
        return json.dumps(self.document()).encode("utf-8")


def bad_request(detail: str, **extra: Any) -> Problem:
    return Problem(400, detail, extra=extra)


def unauthorized(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="uploadd"'})


def forbidden(detail: str) -> Problem:
    return Problem(403, detail)


def not_found(detail: str) -> Problem:
    return Problem(404, detail)


def too_large(limit: int, what: str = "upload") -> Problem:
    return Problem(
        413,
        f"the {what} is larger than the limit of {limit} bytes",
        extra={"limit": limit},
    )


def apply(request: IRequest, problem: Problem) -> bytes:
    """Set status and headers of ``request`` for ``problem``; return the body."""
    request.setResponseCode(problem.status)
    request.setHeader(b"content-type", problem.media_type.encode("ascii"))
    for name, value in problem.headers.items():
        request.setHeader(name.encode("ascii"), value.encode("latin-1"))
    body = problem.body()
    request.setHeader(b"content-length", b"%d" % len(body))
    return body


def unexpected(failure: Failure) -> Problem:
    """A failure that is not the client's: logged with an incident id, which
    is all the client is told."""
    if isinstance(failure.value, Problem):
        return failure.value
    incident = uuid.uuid4().hex[:12]
    log.failure("unhandled error {incident}", failure, incident=incident)
    return Problem(500, f"the server failed; incident {incident} is in its log")
