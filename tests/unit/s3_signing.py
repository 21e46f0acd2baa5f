"""Requests signed as S3 clients sign them, for the S3 unit tests: boto3's
own client builds and signs each request (caught before it is sent), and
the AWS documentation's published examples give fixed vectors."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs
import boto3
from botocore.config import Config
from twisted.web.http_headers import Headers

from uploadd.api.s3.sigv4 import Verified, verify_request

#: The example credentials of the AWS documentation.
AKID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"

T = TypeVar("T")


async def secret_of(access_key_id: str) -> str | None:
    return SECRET if access_key_id == AKID else None


def resolve(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits (the lookups here answer
    at once), or the exception it raised."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise AssertionError("the coroutine waited for something")


@attrs.frozen
class Sent:
    """A request as it would have left the client."""

    method: str
    target: bytes
    headers: Headers
    body: bytes

    def verify(self, now: float | None = None, region: str = REGION) -> Verified:
        return resolve(
            verify_request(
                self.method,
                self.target,
                self.headers,
                time.time() if now is None else now,
                secret_of,
                region,
            )
        )

    def with_target(self, target: bytes) -> Sent:
        return attrs.evolve(self, target=target)

    def with_header(self, name: str, value: str) -> Sent:
        headers = self.headers.copy()
        headers.setRawHeaders(name.encode(), [value.encode()])
        return attrs.evolve(self, headers=headers)

    def without_header(self, name: str) -> Sent:
        headers = self.headers.copy()
        headers.removeHeader(name.encode())
        return attrs.evolve(self, headers=headers)


class _Caught(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("caught before sending")
        self.request = request


def client(
    endpoint: str = "http://127.0.0.1:9000",
    key: str = AKID,
    secret: str = SECRET,
    **config: Any,
) -> Any:
    """A boto3 S3 client (path-style) whose requests are caught unsent."""
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(
            s3={"addressing_style": "path", **config.pop("s3", {})},
            retries={"max_attempts": 1, "mode": "standard"},
            signature_version="s3v4",
            **config,
        ),
    )

    def catch(request: Any, **_: Any) -> None:
        raise _Caught(request)

    s3.meta.events.register("before-send.s3", catch)
    return s3


def _body_of(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    chunks = []
    while chunk := body.read(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def sent(call: Callable[..., Any], **params: Any) -> Sent:
    """The request a client call would send (``sent(s3.get_object, ...)``)."""
    try:
        call(**params)
    except _Caught as caught:
        request = caught.request
    else:
        raise AssertionError("the call sent nothing")
    parts = urlsplit(request.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = Headers()
    for name, value in request.headers.items():
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        headers.addRawHeader(name.encode("latin-1"), raw)
    # http.client adds Host from the URL, as botocore signed it.
    if not headers.hasHeader(b"host"):
        headers.addRawHeader(b"host", parts.netloc.encode())
    return Sent(request.method, target.encode(), headers, _body_of(request.body))
