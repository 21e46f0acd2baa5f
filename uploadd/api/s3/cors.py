"""Cross-origin access to the S3 API, for browsers: a bucket's own CORS rules
(PutBucketCors), else the origins ``[s3] cors_origins`` allows on every
bucket.

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)
is answered by the first rule whose origin (one ``*`` wildcard allowed),
method and every requested header match, as S3 matches them; the origins
from the configuration allow S3's methods and whatever headers are asked
for. A request from an allowed origin is answered with the headers that
let the page read it (``ETag``, ``x-amz-*``...). A preflight nothing allows
is ``403 AccessForbidden``.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.web.iweb import IRequest

from uploadd.api.cors import Cors
from uploadd.api.s3.errors import S3Error

#: The methods an origin from the configuration may use.
METHODS = ("GET", "PUT", "POST", "DELETE", "HEAD")
#: The response headers an origin from the configuration may read.
EXPOSED = (
    "ETag",
    "Content-Length",
    "Content-Range",
    "Content-Type",
    "Content-Disposition",
    "Last-Modified",
    "Accept-Ranges",
    "Location",
    "x-amz-request-id",
    "x-amz-version-id",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
)
MAX_AGE = 3000


def rules_of(cors: str | None) -> list[dict[str, Any]]:
    """A bucket's CORS rules, as it keeps them (None: none)."""
    if not cors:
        return []
    rules: list[dict[str, Any]] = json.loads(cors)
    return rules


def _matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _origin(request: IRequest) -> str | None:
    found: bytes | None = request.getHeader(b"origin")
    return found.decode("latin-1") if found else None


@attrs.frozen
class _Answer:
    """What an allowed cross-origin request is told."""

    origin: str
    methods: Sequence[str]
    expose: Sequence[str]
    max_age: int | None


@attrs.frozen
class BucketCors:
    """Cross-origin rules: a bucket's, and the configuration's."""

    origins: frozenset[str] = frozenset()

    def _rule(
        self,
        rules: Sequence[Mapping[str, Any]],
        origin: str,
        method: str,
        headers: Sequence[str] = (),
    ) -> _Answer | None:
        for rule in rules:
            if not any(_matches(o, origin) for o in rule.get("origins", ())):
                continue
            if method not in rule.get("methods", ()):
                continue
            allowed = rule.get("headers", ())
            if not all(any(_matches(a, h) for a in allowed) for h in headers):
                continue
            given = "*" if "*" in rule.get("origins", ()) else origin
            return _Answer(
                given, rule["methods"], rule.get("expose", ()), rule.get("max_age")
            )
        configured = "*" in self.origins or origin in self.origins
        if configured and method in METHODS:
            return _Answer(origin, METHODS, EXPOSED, MAX_AGE)
        return None

    def preflight(self, request: IRequest, rules: Sequence[Mapping[str, Any]]) -> None:
        """Answer a preflight request (its headers set, status 200), or
        raise the S3Error refusing it."""
        origin = _origin(request)
        wanted: bytes | None = request.getHeader(b"access-control-request-method")
        if origin is None or wanted is None:
            raise S3Error(
                "InvalidRequest",
                "Insufficient information. Origin request header needed.",
                status=400,
            )
        asked: bytes = request.getHeader(b"access-control-request-headers") or b""
        headers = [h.strip() for h in asked.decode("latin-1").split(",") if h.strip()]
        method = wanted.decode("latin-1").strip().upper()
        answer = self._rule(rules, origin, method, headers)
        if answer is None:
            raise S3Error(
                "AccessForbidden",
                "CORSResponse: This CORS request is not allowed. This is usually "
                "because the evalution of Origin, request method / "
                "Access-Control-Request-Method or Access-Control-Request-Headers "
                "are not whitelisted by the resource's CORS spec.",
                Method=method,
                ResourceType="OBJECT",
            )
        self._allow(request, answer)
        request.setHeader(
            b"access-control-allow-methods", ", ".join(answer.methods).encode()
        )
        if headers:
            request.setHeader(
                b"access-control-allow-headers", ", ".join(headers).encode("latin-1")
            )
        if answer.max_age is not None:
            request.setHeader(b"access-control-max-age", b"%d" % answer.max_age)

    def decorate(self, request: IRequest, rules: Sequence[Mapping[str, Any]]) -> None:
        """Let an allowed origin read this answer."""
        origin = _origin(request)
        if origin is None:
            return
        method = request.method.decode("latin-1").upper()
        answer = self._rule(rules, origin, method)
        if answer is not None:
            self._allow(request, answer)

    def _allow(self, request: IRequest, answer: _Answer) -> None:
        request.setHeader(b"access-control-allow-origin", answer.origin.encode())
        if answer.origin != "*":
            request.setHeader(b"access-control-allow-credentials", b"true")
        if answer.expose:
            request.setHeader(
                b"access-control-expose-headers", ", ".join(answer.expose).encode()
            )
        request.setHeader(b"vary", b"Origin, Access-Control-Request-Headers")


class ListenerCors(Cors):
    """The S3 listener's :class:`~uploadd.api.cors.Cors` for answers made
    before a handler runs (the ingest gate's refusals): the configured
    origins may read them. Preflights are the S3 API's own (a bucket's rules
    need the store)."""

    def decorate(self, request: IRequest) -> None:
        BucketCors(self.origins).decorate(request, ())

    def preflight(self, request: IRequest) -> bool:
        return False
