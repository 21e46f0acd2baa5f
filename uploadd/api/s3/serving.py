"""GetObject and HeadObject: an object's headers and bytes, as S3 answers.

The bytes are always served through this listener, never redirected: S3
clients (botocore among them) do not follow a redirect to another host
for GetObject, and a node's answer would carry the node's headers (its
entity tag is the sha256, it knows no ``x-amz-meta-*``). With the bytes
here, they are read from disk; with copies on nodes only, the nearest node
serving now (:class:`~uploadd.cluster.locator.Locator`) is asked for them,
the client's ``Range`` passed on, and its body streamed through as it
arrives (the client's connection pushes back on the node's).

Conditional requests are S3's: ``If-Match`` and ``If-Unmodified-Since``
fail with ``412 PreconditionFailed``, ``If-None-Match`` and
``If-Modified-Since`` answer ``304``; one byte range at most is served
(``206``, or ``416 InvalidRange`` past the end); ``response-*`` query
parameters override the headers answered.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import static
from twisted.web.client import ResponseDone, readBody
from twisted.web.http import datetimeToString, stringToDatetime
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IRequest, IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from noded.download import Unsatisfiable, parse_range
from noded.threads import Runner
from uploadd import errors
from uploadd.api.forward import into_file
from uploadd.api.http import arg
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.xml import quoted
from uploadd.buckets import ObjectInfo
from uploadd.cluster.locator import Locator
from uploadd.ingest.blob import Digest
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import FileRecord

log = Logger()

#: Query parameters that override a header of the answer (S3's).
OVERRIDES = {
    "response-content-type": b"content-type",
    "response-content-language": b"content-language",
    "response-expires": b"expires",
    "response-cache-control": b"cache-control",
    "response-content-disposition": b"content-disposition",
    "response-content-encoding": b"content-encoding",
}


def entity_tags(value: bytes) -> list[str]:
    return [
        tag.strip().removeprefix("W/").strip('"')
        for tag in value.decode("latin-1").split(",")
    ]


def http_date(value: bytes | None) -> int | None:
    if value is None:
        return None
    try:
        return int(stringToDatetime(value))
    except (ValueError, IndexError, KeyError):
        return None


def check_conditions(request: IRequest, info: ObjectInfo) -> bool:
    """Whether the client's copy is current (answer 304); S3's
    ``PreconditionFailed`` when a precondition fails."""
    modified = int(info.modified)
    match = request.getHeader(b"if-match")
    if match is not None:
        tags = entity_tags(match)
        if "*" not in tags and info.etag not in tags:
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                Condition="If-Match",
            )
    else:
        since = http_date(request.getHeader(b"if-unmodified-since"))
        if since is not None and modified > since:
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                Condition="If-Unmodified-Since",
            )
    none_match = request.getHeader(b"if-none-match")
    if none_match is not None:
        tags = entity_tags(none_match)
        return "*" in tags or info.etag in tags
    since = http_date(request.getHeader(b"if-modified-since"))
    return since is not None and modified <= since


def object_headers(request: IRequest, info: ObjectInfo) -> None:
    """The headers describing the object: its entity tag, date, type, what
    the client stored with it, and the overrides the query asks for."""
    request.setHeader(b"etag", quoted(info.etag).encode("latin-1"))
    request.setHeader(b"last-modified", datetimeToString(int(info.modified)))
    request.setHeader(b"accept-ranges", b"bytes")
    request.setHeader(b"content-type", info.content_type.encode("latin-1"))
    for name, value in info.headers.items():
        request.setHeader(name.encode("latin-1"), value.encode("latin-1"))
    for name, value in info.user.items():
        # Kept as the request's header carried it (latin-1 for its bytes).
        lower_case_header(
            request,
            b"x-amz-meta-" + name.encode("latin-1", "replace"),
            value.encode("latin-1", "replace"),
        )
    for parameter, header in OVERRIDES.items():
        override = arg(request, parameter)
        if override is not None:
            request.setHeader(header, override.encode("utf-8"))
    request.setHeader(b"x-content-type-options", b"nosniff")


_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9a-z-]+$")


def lower_case_header(request: IRequest, name: bytes, value: bytes) -> None:
    """Set a response header named in lower case, as S3 names user metadata.

    twisted.web writes every header name in Title-Case, and clients keep
    the case they read for metadata (boto3's ``Metadata`` keys), so a key
    stored as ``color`` would come back ``Color``. The name goes into the
    response's headers as it is: the one private field of Twisted's the S3
    edge writes (an integration test reads the names back). A name that is
    not an HTTP token, or a value with a line break, is left out.
    """
    name = name.lower()
    if not _TOKEN.match(name) or b"\r" in value or b"\n" in value:
        return
    headers: Any = request.responseHeaders
    headers._rawHeaders[name] = [value]


def _checksums(request: IRequest, info: ObjectInfo) -> None:
    """The whole object's checksum, when the client asks for it."""
    mode: bytes = request.getHeader(b"x-amz-checksum-mode") or b""
    if mode.upper() != b"ENABLED":
        return
    for algorithm, value in info.checksums.items():
        request.setHeader(
            b"x-amz-checksum-" + algorithm.lower().encode("ascii"),
            value.encode("ascii"),
        )


def span_of(request: IRequest, size: int) -> tuple[int, int] | None:
    """The byte range asked for (inclusive), None for all of it."""
    header = request.getHeader(b"range")
    if header is None:
        return None
    try:
        return parse_range(header.decode("latin-1"), size)
    except Unsatisfiable:
        request.setHeader(b"content-range", f"bytes */{size}".encode("ascii"))
        raise S3Error(
            "InvalidRange",
            "The requested range is not satisfiable",
            RangeRequested=header.decode("latin-1")[:80],
            ActualObjectSize=str(size),
        ) from None


@attrs.frozen
class ObjectReader:
    """Answers GetObject and HeadObject for objects whose files it finds."""

    _locator: Locator
    _agent: IAgent

    async def answer(
        self, request: IRequest, info: ObjectInfo, record: FileRecord, local: Path
    ) -> Resource | bytes:
        """The answer to GET or HEAD of the object ``info`` (file ``record``,
        whose bytes may be at ``local``)."""
        current = check_conditions(request, info)
        object_headers(request, info)
        if current:
            request.setResponseCode(304)
            for name in (b"content-type", b"content-length"):
                request.responseHeaders.removeHeader(name)
            return b""
        size = info.size
        span = span_of(request, size)
        length = size if span is None else span[1] - span[0] + 1
        if span is not None:
            request.setResponseCode(206)
            first, last = span
            request.setHeader(
                b"content-range", f"bytes {first}-{last}/{size}".encode("ascii")
            )
        else:
            _checksums(request, info)
        request.setHeader(b"content-length", b"%d" % length)
        if request.method == b"HEAD":
            return b""
        try:
            # Opening is quick (as BlobResource does it); the producer reads.
            handle = open(local, "rb")  # noqa: SIM115, ASYNC230 - the producer closes it
        except FileNotFoundError:
            handle = None
        if handle is not None:
            return _LocalBytes(handle, span)
        client = request.getClientAddress()
        url = await self._locator.redirect(record, getattr(client, "host", ""), local)
        if url is None:
            raise S3Error(
                "ServiceUnavailable",
                "The object's bytes are on no storage this server reaches now",
            )
        headers = Headers()
        if span is not None:
            headers.setRawHeaders(b"range", [b"bytes=%d-%d" % span])
        try:
            response: IResponse = await self._agent.request(
                b"GET", url.encode("ascii"), headers
            )
        except Exception as error:
            raise S3Error(
                "ServiceUnavailable",
                "The storage node holding the object does not answer "
                f"({str(error) or type(error).__name__})",
            ) from None
        if response.code != (200 if span is None else 206) or (
            response.length != length
        ):
            response.deliverBody(protocol.Protocol())
            raise S3Error(
                "ServiceUnavailable",
                f"The storage node holding the object answered {response.code}",
            )
        return _RelayedBytes(response)


class _LocalBytes(Resource):
    """The bytes of a file on this server's disk (or one range of them)."""

    isLeaf = True

    def __init__(self, handle: Any, span: tuple[int, int] | None) -> None:
        super().__init__()
        self._handle = handle
        self._span = span

    def render(self, request: IRequest) -> int:
        producer: static.StaticProducer
        if self._span is None:
            producer = static.NoRangeStaticProducer(request, self._handle)
        else:
            first, last = self._span
            producer = static.SingleRangeStaticProducer(
                request, self._handle, first, last - first + 1
            )
        producer.start()
        return NOT_DONE_YET


class _RelayedBytes(Resource):
    """A node's answer's body, streamed to the client as it arrives."""

    isLeaf = True

    def __init__(self, response: IResponse) -> None:
        super().__init__()
        self._response = response

    def render(self, request: IRequest) -> int:
        self._response.deliverBody(_Relay(request))
        return NOT_DONE_YET


class _Relay(protocol.Protocol):
    """Writes what the node sends to the client; the client's connection
    pauses and resumes the node's."""

    def __init__(self, request: Any) -> None:
        # twisted.web's Request: IRequest declares neither notifyFinish nor
        # the producer methods.
        self._request = request
        self._gone = False
        finished: Deferred[None] = request.notifyFinish()
        finished.addErrback(self._client_left)

    def _client_left(self, failure: Failure) -> None:
        self._gone = True
        transport: Any = self.transport
        if transport is not None:
            transport.stopProducing()

    def connectionMade(self) -> None:
        self._request.registerProducer(self.transport, True)

    def dataReceived(self, data: bytes) -> None:
        if not self._gone:
            self._request.write(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if self._gone:
            return
        self._request.unregisterProducer()
        if reason.check(ResponseDone):
            self._request.finish()
            return
        log.info("a node's body broke off: {error}", error=reason.getErrorMessage())
        # The answer is cut short: the client sees fewer bytes than promised.
        channel: Any = getattr(self._request, "channel", None)
        if channel is not None and channel.transport is not None:
            channel.transport.loseConnection()


async def fetch_from_nodes(
    locator: Locator,
    agent: IAgent,
    blobs: BlobStore,
    run: Runner,
    record: FileRecord,
    destination: Path,
) -> None:
    """Bring the bytes of ``record``, held by nodes only, to ``destination``
    (a copy's source); Unavailable when no node gives them whole."""
    url = await locator.redirect(record, "", blobs.path(record.id))
    if url is None:
        raise errors.Unavailable(f"no node holds the bytes of file {record.id}")
    try:
        response: IResponse = await agent.request(b"GET", url.encode("ascii"))
    except Exception as error:
        raise errors.Unavailable(
            f"the node holding file {record.id} does not answer ({error})"
        ) from None
    if response.code != 200:
        await readBody(response)
        raise errors.Unavailable(
            f"the node holding file {record.id} answered {response.code}"
        )
    finished: Deferred[Digest] = Deferred()
    response.deliverBody(into_file(destination, run, finished))
    try:
        digest = await finished
    except Exception:
        raise errors.Unavailable(
            f"the bytes of file {record.id} did not all come from its node"
        ) from None
    if digest.sha256 != record.sha256:
        await run(destination.unlink, True)
        raise errors.Unavailable(f"the bytes of file {record.id} came altered")
