"""S3's errors: the codes the S3 edge answers with and their HTTP statuses.

An :class:`S3Error` is what S3 code raises when a request must fail; the S3
error document (``<Error><Code>...``) is made from it in one place. The
table :data:`STATUS` holds every code the S3 layer uses, each with the status
AWS answers it with, so a code is written once and a misspelt one fails
where it is raised rather than reaching a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Every S3 error code the S3 layer answers with, and its HTTP status.
STATUS: Mapping[str, int] = MappingProxyType(
    {
        "AccessDenied": 403,
        "AccessForbidden": 403,
        "AuthorizationHeaderMalformed": 400,
        "AuthorizationQueryParametersError": 400,
        "BadDigest": 400,
        "BucketAlreadyExists": 409,
        "BucketAlreadyOwnedByYou": 409,
        "BucketNotEmpty": 409,
        "EntityTooLarge": 400,
        "EntityTooSmall": 400,
        "IllegalLocationConstraintException": 400,
        "IncompleteBody": 400,
        "InternalError": 500,
        "InvalidAccessKeyId": 403,
        "InvalidArgument": 400,
        "InvalidBucketName": 400,
        "InvalidDigest": 400,
        "InvalidPart": 400,
        "InvalidPartOrder": 400,
        "InvalidPolicyDocument": 400,
        "InvalidRange": 416,
        "InvalidRequest": 400,
        "KeyTooLongError": 400,
        "MalformedPOSTRequest": 400,
        "MalformedXML": 400,
        "MaxMessageLengthExceeded": 400,
        "MetadataTooLarge": 400,
        "MethodNotAllowed": 405,
        "MissingContentLength": 411,
        "MissingSecurityHeader": 400,
        "NoSuchBucket": 404,
        "NoSuchCORSConfiguration": 404,
        "NoSuchKey": 404,
        "NoSuchUpload": 404,
        "NotImplemented": 501,
        "NotModified": 304,
        "OperationAborted": 409,
        "PreconditionFailed": 412,
        "RequestTimeout": 400,
        "RequestTimeTooSkewed": 403,
        "ServiceUnavailable": 503,
        "SignatureDoesNotMatch": 403,
        "SlowDown": 503,
        "XAmzContentSHA256Mismatch": 400,
    }
)


class S3Error(Exception):
    """A request that fails with S3's ``code`` and ``message``.

    ``status`` defaults to the code's status in :data:`STATUS`; a code that
    is not in the table needs one given. ``details`` are further elements of
    the error document, as AWS adds them (``Region`` to a wrong region,
    ``StringToSign`` and ``CanonicalRequest`` to a signature that does not
    match, ``RequestTime`` and ``ServerTime`` to a skewed clock).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        **details: str,
    ) -> None:
        if status is None:
            status = STATUS[code]
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details: Mapping[str, str] = MappingProxyType(dict(details))

    def __repr__(self) -> str:
        return f"S3Error({self.code!r}, {self.message!r}, {self.status})"
