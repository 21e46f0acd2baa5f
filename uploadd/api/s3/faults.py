"""How the S3 API fails: every error as S3's XML error document, in one place.

An :class:`S3Error` raised by S3 code, an error of the core (named by its
class and its :class:`~uploadd.buckets.Reason`), a problem of the ingest
gate or of routing (by status), and anything unexpected (logged with an
incident id) all become an :class:`S3Problem`: a problem whose body is
``<Error><Code>..</Code><Message>..</Message><Resource>..</Resource>
<RequestId>..</RequestId></Error>``, so the gate's refusals before a body
is read and the handlers' errors after it read alike. Every answer of the
S3 listener carries its request's ``x-amz-request-id``.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import attrs
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from noded.problems import unexpected
from uploadd import errors
from uploadd.api.problems import Problem, storage_full
from uploadd.api.root import decode_path
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.xml import CONTENT_TYPE, error_document
from uploadd.buckets import Reason

REQUEST_ID = b"x-amz-request-id"


def new_request_id() -> str:
    return uuid.uuid4().hex[:16].upper()


def request_id(request: Any) -> str:
    """The id of ``request`` (made on first use), set on its answer."""
    found: str | None = getattr(request, "s3_request_id", None)
    if found is None:
        found = new_request_id()
        request.s3_request_id = found
        request.setHeader(REQUEST_ID, found.encode("ascii"))
    return found


@attrs.define(auto_exc=True)
class S3Problem(Problem):
    """A problem worded as S3's error document."""

    media_type: ClassVar[str] = CONTENT_TYPE.decode("ascii")

    code: str = "InternalError"
    resource: str = ""
    request_id: str = ""
    details: dict[str, str] = attrs.field(factory=dict)

    def body(self) -> bytes:
        return error_document(
            self.code, self.detail, self.resource, self.request_id, self.details
        )

    @classmethod
    def of(
        cls,
        error: S3Error,
        resource: str = "",
        rid: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> S3Problem:
        rid = rid or new_request_id()
        return cls(
            error.status,
            error.message,
            headers={**(headers or {}), REQUEST_ID.decode(): rid},
            code=error.code,
            resource=resource,
            request_id=rid,
            details=dict(error.details),
        )


# -- the core's errors -----------------------------------------------------------

_BY_REASON: dict[str, str] = {
    Reason.BAD_BUCKET_NAME: "InvalidBucketName",
    Reason.BUCKET_TAKEN: "BucketAlreadyExists",
    Reason.BUCKET_OWNED: "BucketAlreadyOwnedByYou",
    Reason.NO_BUCKET: "NoSuchBucket",
    Reason.BUCKET_NOT_EMPTY: "BucketNotEmpty",
    Reason.NOT_YOURS: "AccessDenied",
    Reason.NOT_ALLOWED: "AccessDenied",
    Reason.BAD_KEY: "InvalidArgument",
    Reason.KEY_TOO_LONG: "KeyTooLongError",
    Reason.NO_KEY: "NoSuchKey",
    Reason.BAD_ARGUMENT: "InvalidArgument",
    Reason.BAD_TOKEN: "InvalidArgument",
    Reason.COPY_TO_ITSELF: "InvalidRequest",
    Reason.SOURCE_ELSEWHERE: "ServiceUnavailable",
    Reason.NO_UPLOAD: "NoSuchUpload",
    Reason.BAD_PART_NUMBER: "InvalidArgument",
    Reason.NO_PARTS: "MalformedXML",
    Reason.PART_ORDER: "InvalidPartOrder",
    Reason.BAD_PART: "InvalidPart",
    Reason.PART_TOO_SMALL: "EntityTooSmall",
    Reason.INCOMPLETE_BODY: "IncompleteBody",
    Reason.TOO_LARGE: "EntityTooLarge",
}

#: The code of a core error without a reason, most specific class first.
_BY_CLASS: tuple[tuple[type[errors.UploaddError], str], ...] = (
    (errors.StorageFull, "ServiceUnavailable"),
    (errors.Unavailable, "SlowDown"),
    (errors.ChecksumMismatch, "BadDigest"),
    (errors.InconsistentLength, "IncompleteBody"),
    (errors.Invalid, "InvalidArgument"),
    (errors.Unauthenticated, "AccessDenied"),
    (errors.Forbidden, "AccessDenied"),
    (errors.NotFound, "NoSuchKey"),
    (errors.Gone, "NoSuchUpload"),
    (errors.Conflict, "OperationAborted"),
    (errors.Busy, "OperationAborted"),
    (errors.TooLarge, "EntityTooLarge"),
    (errors.Unsupported, "InvalidRequest"),
    (errors.Unprocessable, "InvalidRequest"),
)


#: What S3 says for codes that say it all; other codes carry the core's words.
_MESSAGES = {
    "NoSuchBucket": "The specified bucket does not exist",
    "NoSuchKey": "The specified key does not exist.",
    "NoSuchUpload": "The specified upload does not exist. The upload ID may be "
    "invalid, or the upload may have been aborted or completed.",
    "BucketAlreadyExists": "The requested bucket name is not available. The "
    "bucket namespace is shared by all users of the system. Please select a "
    "different name and try again.",
    "BucketAlreadyOwnedByYou": "Your previous request to create the named "
    "bucket succeeded and you already own it.",
    "BucketNotEmpty": "The bucket you tried to delete is not empty",
}


def core_error(error: errors.UploaddError) -> tuple[S3Error, dict[str, str]]:
    """The S3 error for a core error, and headers to answer it with."""
    reason = error.extra.get("reason")
    code = _BY_REASON.get(reason) if reason is not None else None
    if code is None:
        code = next(
            (name for kind, name in _BY_CLASS if isinstance(error, kind)),
            "InternalError",
        )
    message = _MESSAGES.get(code) or error.detail[:1].upper() + error.detail[1:]
    details: dict[str, str] = {}
    if code in ("EntityTooSmall", "InvalidPart") and "part_number" in error.extra:
        details["PartNumber"] = str(error.extra["part_number"])
    if code == "EntityTooLarge" and "limit" in error.extra:
        details["MaxSizeAllowed"] = str(error.extra["limit"])
    headers = {}
    if isinstance(error, errors.Unavailable):
        headers["Retry-After"] = str(error.retry_after)
    return S3Error(code, message, None, **details), headers


# -- problems (the gate's, routing's) ----------------------------------------------

_BY_STATUS = {
    400: "InvalidRequest",
    401: "AccessDenied",
    403: "AccessDenied",
    404: "NoSuchKey",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    411: "MissingContentLength",
    413: "EntityTooLarge",
    501: "NotImplemented",
    503: "SlowDown",
    507: "ServiceUnavailable",
}


def problem_error(problem: Problem) -> S3Error:
    """The S3 error for a problem of the main API's kind."""
    code = _BY_STATUS.get(problem.status, "InternalError")
    status = None if code != "InternalError" else max(problem.status, 500)
    return S3Error(code, problem.detail[:1].upper() + problem.detail[1:], status)


def s3_problem(
    error: BaseException | None,
    resource: str = "",
    rid: str | None = None,
    failure: Failure | None = None,
) -> S3Problem:
    """Any failure as the S3 problem answering it."""
    if isinstance(error, S3Problem):
        return error
    headers: dict[str, str] = {}
    if isinstance(error, S3Error):
        found = error
    elif isinstance(error, errors.UploaddError):
        found, headers = core_error(error)
    elif isinstance(error, MethodNotAllowed):
        found = S3Error(
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        )
    elif isinstance(error, HTTPException) and error.code and error.code < 500:
        found = S3Error("InvalidRequest", str(error.description or error.name))
    elif isinstance(error, Problem):
        found = problem_error(error)
        headers = {k: v for k, v in error.headers.items() if k.lower() == "retry-after"}
    elif error is not None and storage_full(error):
        found, headers = core_error(errors.StorageFull())
    else:
        # Logged with an incident id; the client is told only the id.
        told = unexpected(
            failure if failure is not None else Failure(error or Exception(error))
        )
        found = S3Error("InternalError", told.detail)
    return S3Problem.of(found, resource, rid, headers)


def word(error: Problem | errors.UploaddError, target: bytes = b"") -> Problem:
    """A refusal of the S3 listener's ingest gate (before a handler runs)
    of the request for ``target``, as S3 words it: ``StreamingRequest.word``
    of its request factory."""
    return s3_problem(error, decode_path(target) if target else "")


def resource_of(request: IRequest) -> str:
    """What an error document names: the request's path, decoded."""
    return decode_path(request.uri or b"/")
