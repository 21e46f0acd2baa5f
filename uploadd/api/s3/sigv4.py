"""AWS Signature Version 4 for S3: who signed a request, and for which body.

:func:`verify_request` checks a request signed in its ``Authorization``
header or presigned in its query string, exactly as S3 computes the
signature: the canonical request (method; the path with each segment
URI-encoded once, S3 does not normalise or double-encode it; the query
sorted by encoded name then value without ``X-Amz-Signature``; the signed
headers lower-cased with their values trimmed and inner runs of spaces
collapsed; the payload hash), the string to sign, and the key derived from
the secret for the credential's date, region and ``s3``. It answers a
:class:`Verified` that says what the body must be (a given sha256, unsigned,
or ``aws-chunked`` signed chunk by chunk and/or with checksum trailers) and
carries what :mod:`.chunked` needs to check the chunk signatures.

Failures are :class:`~uploadd.api.s3.errors.S3Error` with the codes and
messages S3 answers with. The clock is a value passed in, the secret comes
from an async lookup: nothing here does I/O or reads the time.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import attrs
from twisted.web.http_headers import Headers

from uploadd.api.s3.checksums import algorithm_of
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.signing import (
    ALGORITHM,
    AMZ_DATE,
    Credential,
    canonical_query,
    canonical_request,
    canonical_uri,
    chunk_string_to_sign,
    credential_of,
    decode_query,
    parse_amz_date,
    sign,
    signing_key,
    split_target,
    string_to_sign,
    trailer_string_to_sign,
)

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
#: Payload modes whose body is ``aws-chunked``.
STREAMING = frozenset(
    {STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER}
)
#: Payload modes whose chunks carry signatures.
SIGNED_CHUNKS = frozenset({STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER})
#: Payload modes that end in trailing headers.
TRAILERS = frozenset({STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER})

#: How far a request's time may be from the server's (S3's 15 minutes).
MAX_SKEW = 15 * 60
#: The longest a presigned URL may live (S3's seven days).
MAX_EXPIRES = 7 * 24 * 3600

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
#: A header name as HTTP allows it (RFC 9110 token), in lower case.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")

#: The secret of an access key id, or None for an unknown or revoked one.
SecretOf = Callable[[str], Awaitable[str | None]]

#: Query parameters that make a request presigned: Signature Version 4's,
#: and Version 2's (refused, as S3 refuses it in its newer regions).
_QUERY_AUTH = frozenset({b"x-amz-algorithm", b"x-amz-credential", b"awsaccesskeyid"})
_QUERY_PARAMETERS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)


@attrs.frozen
class Verified:
    """A request whose signature holds, and what its body must be.

    ``payload`` is the body's mode: a lower-case hex sha256 the body must
    have, ``UNSIGNED-PAYLOAD``, or one of the three ``STREAMING-*`` modes of
    an ``aws-chunked`` body. ``decoded_length`` is the length of the decoded
    body (``x-amz-decoded-content-length``) of a streaming one, if given;
    ``trailers`` the trailing headers it declared (``x-amz-trailer``),
    lower-case. ``signing_key``, ``amz_date``, ``scope`` and
    ``seed_signature`` are what the chunk signatures chain from.
    """

    access_key_id: str
    region: str
    date: str
    amz_date: str
    scope: str
    signing_key: bytes = attrs.field(repr=False)
    seed_signature: str
    payload: str
    decoded_length: int | None = None
    trailers: tuple[str, ...] = ()
    presigned: bool = False
    signed_headers: tuple[str, ...] = ()

    @property
    def streaming(self) -> bool:
        """The body is ``aws-chunked``: decode it with :mod:`.chunked`."""
        return self.payload in STREAMING

    @property
    def payload_sha256(self) -> str | None:
        """The sha256 (hex) the body must have, when the signature fixed one."""
        return self.payload if _HEX64.fullmatch(self.payload) else None

    def chunk_signature(self, previous: str, chunk_sha256: str) -> str:
        """The signature of a chunk whose data has ``chunk_sha256`` (hex),
        chained from the ``previous`` signature."""
        return sign(
            self.signing_key,
            chunk_string_to_sign(self.amz_date, self.scope, previous, chunk_sha256),
        )

    def trailer_signature(self, previous: str, trailer_sha256: str) -> str:
        """The signature of the trailing headers whose canonical form has
        ``trailer_sha256`` (hex), chained from the final chunk's."""
        return sign(
            self.signing_key,
            trailer_string_to_sign(self.amz_date, self.scope, previous, trailer_sha256),
        )


# -- reading a request -------------------------------------------------------


def has_credentials(target: bytes, headers: Headers) -> bool:
    """Whether the request says who signed it (an ``Authorization`` header
    or a presigned query, of any version); one that does not is anonymous."""
    if headers.hasHeader(b"authorization"):
        return True
    _, query = split_target(target)
    return bool(_QUERY_AUTH & {name.lower() for name, _ in decode_query(query)})


def _header(headers: Headers, name: str) -> str | None:
    values = headers.getRawHeaders(name.encode("ascii"))
    if not values:
        return None
    return ",".join(v.decode("latin-1").strip() for v in values)


def _request_time(headers: Headers) -> tuple[str, float]:
    """The request's time from ``x-amz-date``, else ``Date``: as the string
    to sign has it, and in seconds."""
    amz = _header(headers, "x-amz-date")
    if amz is not None:
        seconds = parse_amz_date(amz)
        if seconds is not None:
            return amz, seconds
    else:
        date = _header(headers, "date")
        if date is not None:
            try:
                when = parsedate_to_datetime(date)
            except (TypeError, ValueError, IndexError):
                pass
            else:
                # An HTTP date is GMT; one written "-0000" parses naive.
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                seconds = when.timestamp()
                return time.strftime(AMZ_DATE, time.gmtime(seconds)), seconds
    raise S3Error(
        "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
    )


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _unsigned_amz_headers(headers: Headers, signed: Iterable[str]) -> list[str]:
    signed = set(signed)
    return sorted(
        name.decode("latin-1").lower()
        for name, _ in headers.getAllRawHeaders()
        if name.lower().startswith(b"x-amz-")
        and name.decode("latin-1").lower() not in signed
    )


def _check_signed_headers(headers: Headers, signed: tuple[str, ...]) -> None:
    """S3 wants ``host`` and every ``x-amz-*`` header signed."""
    missing = _unsigned_amz_headers(headers, signed)
    if "host" not in signed:
        missing.insert(0, "host")
    if missing:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            HeadersNotSigned=", ".join(missing),
        )


def _payload_mode(value: str | None, presigned: bool) -> str:
    """What ``x-amz-content-sha256`` (``value``) says the body is, validated;
    a presigned request without one has an unsigned body."""
    if value is None:
        if presigned:
            return UNSIGNED_PAYLOAD
        raise S3Error(
            "InvalidRequest",
            "Missing required header for this request: x-amz-content-sha256",
        )
    if _HEX64.fullmatch(value):
        return value.lower()
    allowed = {UNSIGNED_PAYLOAD, STREAMING_UNSIGNED_TRAILER}
    if not presigned:
        # Signed chunks chain from a seed signature over the headers.
        allowed |= SIGNED_CHUNKS
    if value not in allowed:
        raise S3Error(
            "InvalidArgument",
            "x-amz-content-sha256 must be "
            + ", ".join(sorted(allowed))
            + " or a valid sha256 value.",
            ArgumentName="x-amz-content-sha256",
            ArgumentValue=value,
        )
    return value


def _streaming_terms(headers: Headers, mode: str) -> tuple[int | None, tuple[str, ...]]:
    """The decoded length and declared trailers of a streaming body."""
    length: int | None = None
    text = _header(headers, "x-amz-decoded-content-length")
    if text is not None:
        if not text.isdigit():
            raise S3Error(
                "InvalidArgument",
                "x-amz-decoded-content-length must be a non-negative integer",
                ArgumentName="x-amz-decoded-content-length",
                ArgumentValue=text,
            )
        length = int(text)
    elif mode in SIGNED_CHUNKS:
        # botocore leaves it out of an unsigned trailer body whose length it
        # cannot tell; that body's framing still ends it, so only the signed
        # modes, which S3 documents as requiring it, are refused without it.
        raise S3Error(
            "MissingContentLength", "You must provide the Content-Length HTTP header."
        )
    trailers: tuple[str, ...] = ()
    declared = _header(headers, "x-amz-trailer")
    if declared and mode in TRAILERS:
        trailers = tuple(
            name.strip().lower() for name in declared.split(",") if name.strip()
        )
        if any(
            algorithm_of(name) is None or not name.startswith("x-amz-checksum-")
            for name in trailers
        ):
            raise S3Error(
                "InvalidRequest",
                "The value specified in the x-amz-trailer header is not supported",
            )
        if len(trailers) > 1:
            raise S3Error(
                "InvalidRequest",
                "Expecting a single x-amz-checksum- header. "
                "Multiple checksum Types are not allowed.",
            )
    return length, trailers


def _mismatch(
    credential: Credential, string: str, canonical: bytes, provided: str
) -> S3Error:
    return S3Error(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you "
        "provided. Check your key and signing method.",
        AWSAccessKeyId=credential.access_key_id,
        StringToSign=string,
        SignatureProvided=provided,
        CanonicalRequest=canonical.decode("latin-1"),
    )


async def key_of(credential: Credential, secret_of: SecretOf) -> bytes:
    """The signing key of a credential, from its key id's secret; an
    unknown key id is InvalidAccessKeyId."""
    secret = await secret_of(credential.access_key_id)
    if secret is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            AWSAccessKeyId=credential.access_key_id,
        )
    return signing_key(secret, credential.date, credential.region)


async def verify_request(
    method: bytes | str,
    target: bytes,
    headers: Headers,
    now: float,
    secret_of: SecretOf,
    region: str,
) -> Verified:
    """Who signed this request and what its body must be, or the S3Error
    S3 answers it with.

    ``target`` is the request target exactly as received (``request.uri``),
    ``now`` the server's time in seconds (``clock.seconds()``), ``region``
    the one this endpoint serves. An anonymous request (see
    :func:`has_credentials`) is ``AccessDenied``.
    """
    if isinstance(method, bytes):
        method = method.decode("ascii")
    path, query = split_target(target)
    pairs = decode_query(query)
    names = {name.lower() for name, _ in pairs}
    authorization = _header(headers, "authorization")
    presigned = b"x-amz-algorithm" in names or b"x-amz-credential" in names
    if authorization is not None and presigned:
        raise S3Error(
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
            "parameter, Signature query string parameter or the Authorization "
            "header should be specified",
            ArgumentName="Authorization",
            ArgumentValue=authorization,
        )
    if b"awsaccesskeyid" in names and not presigned:
        raise _version_2()
    if presigned:
        claim = _claim_of_query(pairs, headers, now, region)
    elif authorization is not None:
        claim = _claim_of_header(authorization, pairs, headers, now, region)
    else:
        raise S3Error("AccessDenied", "Access Denied")
    return await _verify(claim, method, path, headers, secret_of)


def _version_2() -> S3Error:
    return S3Error(
        "InvalidRequest",
        "The authorization mechanism you have provided is not supported. "
        f"Please use {ALGORITHM}.",
    )


def _parse_authorization(authorization: str) -> tuple[str, tuple[str, ...], str]:
    """Credential, signed headers and signature of an Authorization header."""
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme != ALGORITHM:
        if scheme == "AWS":
            raise _version_2()
        raise S3Error(
            "InvalidArgument",
            "Unsupported Authorization Type",
            ArgumentName="Authorization",
            ArgumentValue=authorization,
        )
    parts: dict[str, str] = {}
    for component in rest.split(","):
        name, equals, value = component.strip().partition("=")
        if not equals:
            raise S3Error(
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; the authorization "
                f'component "{component.strip()}" is malformed.',
            )
        parts[name] = value.strip()
    for required in ("Credential", "SignedHeaders", "Signature"):
        if not parts.get(required):
            raise S3Error(
                "AuthorizationHeaderMalformed",
                "The authorization header is malformed; the authorization header "
                f"requires the component {required}.",
            )
    return (
        parts["Credential"],
        _signed_names(parts["SignedHeaders"]),
        parts["Signature"],
    )


@attrs.frozen
class _Claim:
    """What a request says about its signature, read and checked for form
    before the secret is looked up."""

    credential: Credential
    amz_date: str
    signed: tuple[str, ...]
    signature: str
    query: str
    #: The payload hash the signer put in the canonical request.
    signed_payload: str
    #: What the body is (:attr:`Verified.payload`).
    payload: str
    presigned: bool


def _claim_of_header(
    authorization: str,
    pairs: list[tuple[bytes, bytes]],
    headers: Headers,
    now: float,
    region: str,
) -> _Claim:
    text, signed, provided = _parse_authorization(authorization)
    credential = credential_of(
        text,
        region,
        "AuthorizationHeaderMalformed",
        "The authorization header is malformed; ",
    )
    amz_date, seconds = _request_time(headers)
    if amz_date[:8] != credential.date:
        raise S3Error(
            "AuthorizationHeaderMalformed",
            f'Invalid credential date "{credential.date}". '
            f'This date is not the same as X-Amz-Date: "{amz_date[:8]}".',
        )
    if abs(now - seconds) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is "
            "too large.",
            RequestTime=_iso(seconds),
            ServerTime=_iso(now),
            MaxAllowedSkewMilliseconds=str(MAX_SKEW * 1000),
        )
    content_sha256 = _header(headers, "x-amz-content-sha256")
    payload = _payload_mode(content_sha256, presigned=False)
    return _Claim(
        credential,
        amz_date,
        signed,
        provided,
        canonical_query(pairs),
        content_sha256 or payload,
        payload,
        presigned=False,
    )


def _signed_names(text: str, query: bool = False) -> tuple[str, ...]:
    """The header names a ``SignedHeaders`` list gives, in its order."""
    names = tuple(text.split(";"))
    if not all(_TOKEN.fullmatch(name) for name in names):
        if query:
            raise _query_error("X-Amz-SignedHeaders is malformed")
        raise S3Error(
            "AuthorizationHeaderMalformed",
            "The authorization header is malformed; SignedHeaders is malformed.",
        )
    return names


def _query_error(message: str) -> S3Error:
    return S3Error("AuthorizationQueryParametersError", message)


def _claim_of_query(
    pairs: list[tuple[bytes, bytes]], headers: Headers, now: float, region: str
) -> _Claim:
    params = {
        name.decode("latin-1"): value.decode("utf-8", "replace")
        for name, value in pairs
    }
    if any(not params.get(name) for name in _QUERY_PARAMETERS):
        raise _query_error(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
            "and X-Amz-Expires parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise _query_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    credential = credential_of(
        params["X-Amz-Credential"],
        region,
        "AuthorizationQueryParametersError",
        "Error parsing the X-Amz-Credential parameter; ",
    )
    amz_date = params["X-Amz-Date"]
    seconds = parse_amz_date(amz_date)
    if seconds is None:
        raise _query_error(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        )
    if amz_date[:8] != credential.date:
        raise _query_error(
            f'Invalid credential date "{credential.date}". '
            f'This date is not the same as X-Amz-Date: "{amz_date[:8]}".'
        )
    expires_text = params["X-Amz-Expires"]
    if not re.fullmatch(r"-?\d+", expires_text):
        raise _query_error("X-Amz-Expires should be a number")
    expires = int(expires_text)
    if expires < 0:
        raise _query_error("X-Amz-Expires must be non-negative")
    if expires > MAX_EXPIRES:
        raise _query_error(
            "X-Amz-Expires must be less than a week (in seconds) that is; "
            f"{MAX_EXPIRES} seconds"
        )
    if now > seconds + expires:
        # Details as S3 gives them; one name is no Python identifier.
        expired: dict[str, Any] = {
            "X-Amz-Expires": expires_text,
            "Expires": _iso(seconds + expires),
            "ServerTime": _iso(now),
        }
        raise S3Error("AccessDenied", "Request has expired", **expired)
    if seconds - now > MAX_SKEW:
        raise S3Error("AccessDenied", "Request is not valid yet")
    fixed = params.get("X-Amz-Content-Sha256")
    return _Claim(
        credential,
        amz_date,
        _signed_names(params["X-Amz-SignedHeaders"], query=True),
        params["X-Amz-Signature"],
        canonical_query(pairs, exclude=frozenset({b"X-Amz-Signature"})),
        # A presigned URL cannot know its body: S3 signs this constant,
        # unless the URL itself fixes the body's hash.
        fixed or UNSIGNED_PAYLOAD,
        _payload_mode(_header(headers, "x-amz-content-sha256") or fixed, True),
        presigned=True,
    )


async def _verify(
    claim: _Claim, method: str, path: bytes, headers: Headers, secret_of: SecretOf
) -> Verified:
    """Check the signature a request claims against its secret."""
    _check_signed_headers(headers, claim.signed)
    length: int | None = None
    trailers: tuple[str, ...] = ()
    if claim.payload in STREAMING:
        length, trailers = _streaming_terms(headers, claim.payload)
    credential = claim.credential
    key = await key_of(credential, secret_of)
    canonical = canonical_request(
        method,
        canonical_uri(path),
        claim.query,
        headers,
        claim.signed,
        claim.signed_payload,
    )
    string = string_to_sign(claim.amz_date, credential.scope, canonical)
    provided = claim.signature
    if not hmac.compare_digest(sign(key, string).encode(), provided.encode()):
        raise _mismatch(credential, string, canonical, provided)
    return Verified(
        access_key_id=credential.access_key_id,
        region=credential.region,
        date=credential.date,
        amz_date=claim.amz_date,
        scope=credential.scope,
        signing_key=key,
        seed_signature=provided,
        payload=claim.payload,
        decoded_length=length,
        trailers=trailers,
        presigned=claim.presigned,
        signed_headers=claim.signed,
    )
