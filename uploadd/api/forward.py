"""Continuing an upload through the instance that holds its bytes.

Several uploadd instances share one database; an unfinished resumable
upload's bytes are on the disk of the instance that opened it (its
``holder``). A request for it that reaches another instance -- a load
balancer without stickiness sends each tus PATCH anywhere -- goes on to the
holder: this module sends it there and relays the answer. A body streams
through as it arrives, never buffered: the holder's connection pushes back
on the client's (:class:`ForwardedBody`), so memory stays one socket read
per direction whatever the body's size.

Because every request for an upload ends at its holder, the holder's one
writer per upload (423 for a second PATCH) holds across all instances. When
the holder does not answer, the client is told 503 with ``Retry-After`` and
why; it resumes from the offset once the holder is back. A request that one
instance forwarded is never forwarded again (``Uploadd-Forwarded-By``):
instances that disagree about a holder answer 503 instead of looping.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Protocol

import attrs
from twisted.internet import protocol
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    FileBodyProducer,
    HTTPConnectionPool,
    ResponseDone,
    _HTTP11ClientFactory,
    readBody,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IRequest, IResponse
from zope.interface import implementer

from noded.signing import signed_query
from noded.threads import Runner
from uploadd import errors
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.ingest.sink import FlowControl, FlowLimits, StreamedContent, UploadSink
from uploadd.store.interface import IMetadataStore, UploadRecord

log = Logger()


def part_grant(upload_id: str) -> str:
    """What a signature for a partial upload's bytes covers."""
    return f"upload part {upload_id}"


#: The header naming the instance that forwarded a request.
FORWARDED_BY = b"uploadd-forwarded-by"

#: Headers of one connection (RFC 9110 7.6.1), not of the request or the
#: answer; the sender sets its own length and framing.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"content-length",
    }
)


class Forwardable(Protocol):
    """What forwarding needs of the request it sends on."""

    requestHeaders: Headers

    def getClientAddress(self) -> Any: ...


@attrs.frozen
class Relayed:
    """The holder's answer, to be given to the client as it is."""

    code: int
    headers: Headers
    body: bytes

    def apply(self, request: IRequest) -> bytes:
        """Set the answer's status and headers on ``request``; its body."""
        request.setResponseCode(self.code)
        for name, values in self.headers.getAllRawHeaders():
            if name.lower() not in HOP_BY_HOP:
                request.responseHeaders.setRawHeaders(name, values)
        if request.method != b"HEAD":
            request.setHeader(b"content-length", b"%d" % len(self.body))
        return self.body


@implementer(IBodyProducer)
class ForwardedBody(StreamedContent):
    """``request.content`` of a body forwarded to its holder, and the body
    producer of the request to the holder: bytes go on as they arrive; when
    the holder's connection is full, reading from the client pauses."""

    def __init__(self, flow: FlowControl, length: int | None) -> None:
        self.received = 0
        self.length: Any = UNKNOWN_LENGTH if length is None else length
        self._flow = flow
        self._held: list[bytes] = []
        self._consumer: IConsumer | None = None
        self._ended: Deferred[None] | None = None
        self._complete = False
        self.stopped = False
        #: The request to the holder (set by the gate), cancelled on abort.
        self.sending: Deferred[Any] | None = None

    # -- the client's side (twisted.web writes the body here) ------------------

    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.stopped:
            return
        if self._consumer is None:
            self._held.append(data)
        else:
            self._consumer.write(data)

    def complete(self) -> None:
        """The client's body has all arrived."""
        self._complete = True
        if self._ended is not None and not self._ended.called:
            self._ended.callback(None)

    def abort(self) -> None:
        """The client is gone (or was refused): end the request to the holder,
        which keeps what reached it, as from any interrupted client."""
        if self.stopped:
            return
        self.stopped = True
        if self.sending is not None:
            # (A no-op once it has its answer; while it waits on the holder's
            # connection, it reaches that connection and aborts it.)
            self.sending.cancel()

    # -- the holder's side (the Agent reads the body from here) ----------------

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self._consumer = consumer
        for chunk in self._held:
            consumer.write(chunk)
        self._held = []
        self._ended = Deferred()
        if self._complete:
            self._ended.callback(None)
        else:
            self._flow.resumeProducing()
        return self._ended

    def pauseProducing(self) -> None:
        self._flow.pauseProducing()

    def resumeProducing(self) -> None:
        if not self.stopped:
            self._flow.resumeProducing()

    def stopProducing(self) -> None:
        # The holder's connection ended before the body did; what the
        # client still sends is dropped (the answer says what happened).
        self.stopped = True


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False


@attrs.define
class Forwarder:
    """Sends a request for an upload held elsewhere to its holder; brings
    the bytes of partial uploads held elsewhere (a :class:`PartSource`)."""

    _store: IMetadataStore
    _agent: IAgent
    name: str
    #: Signs requests for a part's bytes (the cluster secret's URL key).
    _key: bytes
    _run: Runner
    _clock: IReactorTime

    @classmethod
    def over_tcp(
        cls,
        store: IMetadataStore,
        reactor: IReactorTime,
        name: str,
        key: bytes,
        run: Runner,
        connect_timeout: float = 5.0,
    ) -> Forwarder:
        pool = HTTPConnectionPool(reactor, persistent=False)
        # Not a log line per forwarded request ("Starting factory ...").
        pool._factory = _QuietClientFactory
        agent = Agent(reactor, connectTimeout=connect_timeout, pool=pool)
        return cls(store, agent, name, key, run, reactor)

    # -- parts of a final upload -----------------------------------------------

    async def pull(self, part: UploadRecord, destination: Path) -> None:
        response = await self._part_request(b"GET", part)
        if response.code != 200:
            await readBody(response)
            raise errors.Unavailable(
                f"the instance holding part {part.id} ({part.holder}) answered "
                f"{response.code}; retry shortly",
                holder=part.holder,
            )
        finished: Deferred[Digest] = Deferred()
        response.deliverBody(_IntoFile(destination, self._run, finished))
        try:
            digest = await finished
        except Exception:
            raise errors.Unavailable(
                f"the bytes of part {part.id} did not all come from its holder "
                f"({part.holder}); retry shortly",
                holder=part.holder,
            ) from None
        expected = part.length if part.length is not None else part.received
        if digest.size != expected:
            await self._run(destination.unlink, True)
            raise errors.Unavailable(
                f"part {part.id} came with {digest.size} bytes of {expected}; "
                "retry shortly",
                holder=part.holder,
            )

    async def drop(self, part: UploadRecord) -> None:
        try:
            response = await self._part_request(b"DELETE", part)
            await readBody(response)
        except Exception as error:
            # Its holder removes it when it next starts (the part is joined).
            log.info(
                "part {part} left on {holder}: {error}",
                part=part.id,
                holder=part.holder,
                error=str(error) or type(error).__name__,
            )

    async def _part_request(self, method: bytes, part: UploadRecord) -> IResponse:
        record = await self._store.get_instance(part.holder)
        if record is None or not record.url or record.retired_at is not None:
            raise errors.Unavailable(
                f"the instance holding part {part.id} ({part.holder}) cannot be "
                "reached",
                holder=part.holder,
            )
        query = signed_query(
            self._key, part_grant(part.id), int(self._clock.seconds()) + 300, "", ""
        )
        url = f"{record.url.rstrip('/')}/instances/uploads/{part.id}/data?{query}"
        headers = Headers({FORWARDED_BY: [self.name.encode("ascii")]})
        try:
            response: IResponse = await self._agent.request(
                method, url.encode("ascii"), headers
            )
        except Exception as error:
            raise errors.Unavailable(
                f"the instance holding part {part.id} ({part.holder}) does not "
                f"answer ({str(error) or type(error).__name__}); retry shortly",
                retry_after=10,
                holder=part.holder,
            ) from None
        return response

    async def send(
        self,
        request: Forwardable,
        method: bytes,
        target: bytes,
        holder: str,
        body: IBodyProducer | None,
    ) -> Relayed:
        """``method target`` (with the request's headers and ``body``) sent
        to ``holder``; its answer. Unavailable when it cannot be reached."""
        url = await self._url_of(request, holder) + target
        if isinstance(body, ForwardedBody) and body.stopped:
            # The client left while the holder was looked up.
            raise errors.Invalid("the client went away before its body was sent on")
        headers = self._headers(request)
        try:
            sending = self._agent.request(method, url, headers, body)
            if isinstance(body, ForwardedBody):
                body.sending = sending
            response: IResponse = await sending
            content: bytes = await readBody(response)
        except Exception as error:
            log.info(
                "forwarding {method} {target} to {holder} failed: {error}",
                method=method,
                target=target,
                holder=holder,
                error=str(error) or type(error).__name__,
            )
            raise errors.Unavailable(
                f"the instance holding this upload ({holder}) does not answer; "
                "retry shortly (ask for the upload's offset first)",
                retry_after=10,
                holder=holder,
            ) from None
        return Relayed(response.code, response.headers, content)

    async def _url_of(self, request: Forwardable, holder: str) -> bytes:
        came_from = request.requestHeaders.getRawHeaders(FORWARDED_BY)
        if came_from:
            # Never a second hop: the instances disagree about the holder.
            raise errors.Unavailable(
                f"this upload's bytes are on instance {holder!r}, and "
                f"{came_from[0].decode('latin-1')!r} sent the request here; "
                "retry shortly",
                holder=holder,
            )
        instance = await self._store.get_instance(holder)
        if instance is None:
            raise errors.Unavailable(
                f"the instance holding this upload ({holder}) is not registered; "
                "retry once it has started",
                retry_after=30,
                holder=holder,
            )
        if instance.retired_at is not None:
            raise errors.Gone(
                f"the instance holding this upload ({holder}) was retired; "
                "start the upload again"
            )
        if not instance.url:
            raise errors.Unavailable(
                f"the instance holding this upload ({holder}) gave no URL the "
                "others reach it at (it listens on a UNIX socket: set its "
                "[cluster] instance_url)",
                retry_after=30,
                holder=holder,
            )
        return instance.url.rstrip("/").encode("ascii")

    def _headers(self, request: Forwardable) -> Headers:
        headers = Headers()
        for name, values in request.requestHeaders.getAllRawHeaders():
            if name.lower() not in HOP_BY_HOP:
                headers.setRawHeaders(name, values)
        client = request.getClientAddress()
        host = getattr(client, "host", None)
        if host:
            headers.addRawHeader(b"x-forwarded-for", host.encode("ascii"))
        headers.setRawHeaders(FORWARDED_BY, [self.name.encode("ascii")])
        return headers


class _IntoFile(protocol.Protocol):
    """A response body written to a new file as it arrives, through the
    ingest sink (hashing and writing off the reactor, reading paused while
    the disk is behind)."""

    def __init__(
        self, destination: Path, run: Runner, finished: Deferred[Digest]
    ) -> None:
        self._destination = destination
        self._run = run
        self._finished = finished
        self._sink: UploadSink | None = None

    def connectionMade(self) -> None:
        # The response's transport pauses and resumes the connection.
        flow: Any = self.transport
        self._sink = UploadSink(
            BlobFile(self._destination, fsync=True),
            self._run,
            flow,
            FlowLimits(high_water=4 << 20, low_water=1 << 20, max_size=None),
        )

    def dataReceived(self, data: bytes) -> None:
        assert self._sink is not None
        self._sink.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        assert self._sink is not None
        if reason.check(ResponseDone):
            self._sink.complete().chainDeferred(self._finished)
        else:
            self._sink.abort()
            self._finished.errback(reason)


def into_file(
    destination: Path, run: Runner, finished: Deferred[Digest]
) -> protocol.Protocol:
    """A protocol for ``IResponse.deliverBody`` that writes the body to the
    new file ``destination`` through the ingest sink; ``finished`` fires
    with its digest, or fails (the file removed) if the body broke off."""
    return _IntoFile(destination, run, finished)


def relay_buffered(
    forwarder: Forwarder, request: IRequest, holder: str
) -> Deferred[Relayed]:
    """Forward a request whose (small) body twisted.web has read already."""
    content = request.content.getvalue() if request.content is not None else b""
    body = FileBodyProducer(io.BytesIO(content)) if content else None
    return Deferred.fromCoroutine(
        forwarder.send(request, request.method, request.uri, holder, body)
    )
