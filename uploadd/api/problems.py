"""RFC 9457 problem details: the one place errors become HTTP responses.

Handlers raise :class:`Problem`; :func:`install` teaches a Klein app to render
it, werkzeug's routing errors and any unexpected exception as
``application/problem+json``. No traceback or path reaches a client: an
unexpected error is logged with an id and the client is told only that id.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Any
from urllib.parse import urlsplit

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import RequestRedirect

from noded.problems import (
    PROBLEM_TYPE,
    Problem,
    apply,
    bad_request,
    forbidden,
    not_found,
    too_large,
    unauthorized,
    unexpected,
)
from uploadd import errors
from uploadd.api.digests import mismatch_problem
from uploadd.api.forward import relay_buffered

__all__ = [
    "PROBLEM_TYPE",
    "Problem",
    "apply",
    "bad_request",
    "forbidden",
    "from_failure",
    "install",
    "moved",
    "not_found",
    "problem_of",
    "too_large",
    "unauthorized",
]

log = Logger()

#: The status of each core error, most specific first.
STATUSES: tuple[tuple[type[errors.UploaddError], int], ...] = (
    (errors.StorageFull, 507),
    (errors.Unavailable, 503),
    (errors.Invalid, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.Gone, 410),
    (errors.TooLarge, 413),
    (errors.Unsupported, 415),
    (errors.Unprocessable, 422),
    (errors.Busy, 423),
    (errors.ChecksumMismatch, 460),
)


def problem_of(error: errors.UploaddError) -> Problem:
    """The HTTP face of a core error: its status, and the headers that let a
    client act on it (when to retry, where to resume, how to sign in). A
    mismatch of an RFC 9530 integrity field is its registered problem type;
    one of tus's Upload-Checksum stays tus's 460."""
    if isinstance(error, errors.ChecksumMismatch):
        typed = mismatch_problem(error)
        if typed is not None:
            return typed
    status = next((code for kind, code in STATUSES if isinstance(error, kind)), 500)
    headers: dict[str, str] = {}
    if isinstance(error, errors.Unavailable):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, errors.Conflict) and error.offset is not None:
        headers["Upload-Offset"] = str(error.offset)
    if isinstance(error, errors.Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="uploadd"'
    title = "Checksum Mismatch" if status == 460 else ""
    return Problem(status, error.detail, title, headers, dict(error.extra))


def storage_full(error: BaseException) -> bool:
    """Whether ``error`` says the disk (files or database) is out of space."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(error, sqlite3.OperationalError) and "full" in str(error)


def from_failure(failure: Failure, request: IRequest | None = None) -> Problem:
    """The problem to show for any failure raised by a handler (of
    ``request``, whose query a redirect keeps)."""
    error = failure.value
    if isinstance(error, Problem):
        return error
    if isinstance(error, RequestRedirect):
        return moved(error.new_url, request.uri if request is not None else b"")
    if isinstance(error, MethodNotAllowed):
        allowed = ", ".join(error.valid_methods or ())
        return Problem(
            405,
            f"method not allowed here; allowed: {allowed}",
            headers={"Allow": allowed},
        )
    if isinstance(error, HTTPException) and error.code:
        return Problem(error.code, _plain(error.description or error.name))
    if isinstance(error, errors.UploaddError):
        return problem_of(error)
    if error is not None and storage_full(error):
        log.warn("storage full: {error}", error=error)
        return problem_of(errors.StorageFull())
    return unexpected(failure)


def moved(new_url: str, target: bytes) -> Problem:
    """A 308 to the canonical form of a path (werkzeug's redirect for a missing
    trailing slash or doubled slashes), keeping the query of ``target``.

    Location is path-absolute: the host a client used (or a proxy in front)
    stays the client's, and a path cannot begin with ``//`` (which a client
    would read as another host).
    """
    parts = urlsplit(new_url)
    path = "/" + parts.path.lstrip("/")
    query = parts.query or target.partition(b"?")[2].decode("latin-1")
    location = f"{path}?{query}" if query else path
    return Problem(
        308,
        f"this resource is at {path}; repeat the request there",
        headers={"Location": location},
        extra={"location": location},
    )


def _plain(text: str) -> str:
    return " ".join(text.replace("<p>", " ").replace("</p>", " ").split())


def _handle(self: Any, request: IRequest, failure: Failure) -> bytes | Deferred[bytes]:
    forwarder = getattr(request, "forwarder", None)
    if isinstance(failure.value, errors.Elsewhere) and forwarder is not None:
        # An upload whose bytes another instance holds: the request goes on
        # there, and its answer is this one.
        relaying = relay_buffered(forwarder, request, failure.value.holder)
        return relaying.addCallbacks(
            lambda relayed: relayed.apply(request),
            lambda failed: apply(request, from_failure(failed, request)),
        )
    return apply(request, from_failure(failure, request))


def install(app: Klein) -> None:
    """Route every error of ``app`` through :func:`from_failure`."""
    app.handle_errors(Exception)(_handle)
