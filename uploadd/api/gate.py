"""The ingest gate: decides what to do with a body when its headers arrive.

For a streaming route it authenticates, checks scope, size and concurrency,
then asks the route's family for a :class:`BodyPlan` (which file, from which
offset, how large, parsed as a form or not); for any other route it gives a
small capped buffer. A plan may need the database: then reading pauses, the
few bytes already read are held, and ``Expect: 100-continue`` is answered
only once the plan is made. Every refusal comes before a body byte is stored.

An upload made by one request (``ONE_REQUEST``) is counted here when its
request ends; a resumable one is counted by the resumable core.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

from noded.threads import Runner
from uploadd.api import problems
from uploadd.api.access import authenticate, query_value, require
from uploadd.api.forward import ForwardedBody, Forwarder, Relayed
from uploadd.api.http import base_url
from uploadd.api.problems import Problem, too_large
from uploadd.api.root import RouteMatch, Router
from uploadd.auth.tokens import Action, Principal, TokenIssuer
from uploadd.errors import Elsewhere, UploaddError
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.ingest.budget import MemoryBudget
from uploadd.ingest.direct import SocketSource
from uploadd.ingest.multipart import MultipartSink
from uploadd.ingest.progress import Progress, ProgressBoard, check_key
from uploadd.ingest.sink import (
    Checkpoints,
    FlowControl,
    FlowLimits,
    SinkState,
    StreamedContent,
    UploadSink,
)
from uploadd.metrics import Metrics
from uploadd.uploads.appends import Append

log = Logger()

#: Who a body of a ``SIGNED`` family is for until its plan says.
UNSIGNED = Principal(0, "", frozenset())

#: Upload protocols (``UPLOAD_ROUTES`` values) whose one request is the
#: whole upload.
ONE_REQUEST = frozenset({"put", "multipart", "output"})


class Admitted(Protocol):
    """What the gate needs of a request whose body it admits (the Site's
    ``StreamingRequest``): its headers, a place for the body, and a way to
    answer, to pause reading and to say the body is moving."""

    requestHeaders: Headers
    route: RouteMatch | None
    upload: Upload | None
    content: Any
    processing: bool

    @property
    def gone(self) -> bool:
        """Answered already, or its client disconnected."""

    def notifyFinish(self) -> Deferred[None]: ...

    def getClientAddress(self) -> Any: ...

    def reject(self, error: Problem | UploaddError) -> None:
        """Answer ``error`` now and stop taking the body."""

    def hold_continue(self) -> None:
        """Keep ``100 Continue`` back while the gate decides."""

    def release_continue(self) -> None:
        """Send the ``100 Continue`` held back, if any."""

    def body_source(self) -> SocketSource | None:
        """The socket the body may be read from directly (None: through
        the channel only)."""

    def body_flow(self) -> FlowControl | None:
        """The connection's read side, set up for a large body (None once
        the connection is gone)."""

    def progressed(self) -> None:
        """The body moved on (on disk): the connection is not idle."""

    def relay(self, outcome: Relayed | Failure) -> None:
        """Answer with what the instance holding the upload said (or the
        problem of not reaching it), whether or not the body has ended."""

    def inform(
        self, status: int, reason: str, headers: Sequence[tuple[str, str]]
    ) -> None:
        """Send an informational (1xx) response ahead of the final one."""

    def cut(self) -> None:
        """End the request abruptly while its body streams (what reached
        disk is kept as when its client leaves); nothing once it is handled."""


@attrs.frozen
class Admission:
    """What a family sees when asked to plan a body."""

    principal: Principal
    endpoint: str
    arguments: dict[str, Any]
    headers: Headers
    target: bytes
    length: int | None
    max_upload_size: int
    #: Scheme and authority the client addressed (``http://host:port``).
    origin: str = ""
    method: bytes = b""


@attrs.frozen
class BodyPlan:
    """Where an admitted body goes.

    ``max_size`` bounds the file bytes this body may carry (None: the global
    limit); ``boundary`` makes the body a multipart form whose ``file`` part
    is written; ``context`` is the family's own (an upload record, a lock).
    ``on_aborted(n)`` hears how many bytes an interrupted body left on disk;
    ``on_checkpoint(n)``, when given, records that ``n`` bytes of the body are
    durable (it is called every ``[uploads] checkpoint`` bytes).
    """

    target: BlobFile
    max_size: int | None = None
    boundary: bytes | None = None
    context: Any = None
    on_aborted: Callable[[int], object] = lambda n: None
    on_checkpoint: Callable[[int], Deferred[None]] | None = None
    on_attached: Callable[[Attached], None] | None = None
    #: Who the body is for, when the family's own credentials said so
    #: (a ``SIGNED`` family's plan).
    principal: Principal | None = None
    #: What the raw body goes through before the sink (a transfer coding
    #: of the family's own, such as S3's aws-chunked): given the sink and
    #: the request's refusal, the content object Twisted writes to.
    wrap: Callable[[UploadSink, Callable[[Any], None]], DecodedBody] | None = None
    #: How the family words a refusal of the streaming body (over a limit,
    #: the disk failed); None: the core's error as it is.
    problem_of: Callable[[UploaddError], Problem | UploaddError] | None = None


@attrs.frozen
class Attached:
    """A body as its family sees it once it streams into its plan's file
    (``BodyPlan.on_attached``): how many bytes are on disk, a way to send
    informational responses and to end the request, and its end."""

    _request: Admitted
    _sink: UploadSink

    @property
    def written(self) -> int:
        """Bytes of this body on disk so far."""
        return self._sink.written

    @property
    def durable(self) -> int:
        """Bytes of this body durable and recorded (by checkpoints)."""
        return self._sink.checkpointed

    def inform(
        self, status: int, reason: str, headers: Sequence[tuple[str, str]]
    ) -> None:
        self._request.inform(status, reason, headers)

    def cut(self) -> None:
        self._request.cut()

    def finished(self) -> Deferred[None]:
        """Fires when the request ends, however it ends."""
        return self._request.notifyFinish()


class DecodedBody(Protocol):
    """A body decoded on its way into an :class:`UploadSink`."""

    received: int

    def write(self, data: bytes) -> None: ...

    def complete(self) -> Deferred[Digest]: ...

    def abort(self) -> None: ...

    def tell(self) -> int: ...

    def seek(self, offset: int, whence: int = 0) -> int: ...

    def read(self, size: int = -1) -> bytes: ...

    def close(self) -> None: ...


class StreamingFamily(Protocol):
    """A resource family with routes that take a streamed body."""

    UPLOAD_ROUTES: dict[str, str]

    async def plan_body(self, admission: Admission) -> BodyPlan: ...


@attrs.define(eq=False)
class Upload:
    """An admitted body, attached to its request as ``request.upload``."""

    principal: Principal
    started: float
    expected: int | None
    ready: Deferred[BodyPlan]
    #: The route's upload protocol (``put``, ``multipart``, ``tus``, ...).
    protocol: str = ""
    request_line: tuple[bytes, bytes] = (b"", b"")
    plan: BodyPlan | None = None
    sink: UploadSink | None = None
    body: UploadSink | MultipartSink | DecodedBody | ForwardedBody | None = None
    progress: Progress | None = None
    #: The request as it goes on to the instance holding the upload.
    forwarded: Deferred[Relayed] | None = None
    file_id: str | None = None
    succeeded: bool = False
    #: Seconds from the headers to the stored file, once stored.
    took: float | None = None
    ended: bool = False

    async def complete(
        self,
    ) -> tuple[BodyPlan, UploadSink | MultipartSink | DecodedBody, Any]:
        """Wait for the plan and the whole body; (plan, body, digest)."""
        plan = await self.ready
        body = self.body
        assert body is not None and not isinstance(body, ForwardedBody)
        return plan, body, await body.complete()


def upload_of(request: Any) -> Upload:
    """The upload the ingest gate attached to ``request``."""
    upload: Upload | None = getattr(request, "upload", None)
    if upload is None:
        # Only a Site whose requestFactory is the Admitted gets here
        # with an upload; anything else is a wiring fault, not a client's.
        raise RuntimeError("upload route reached without the ingest gate")
    return upload


def append_plan(
    append: Append,
    limit: int | None = None,
    context: Any = None,
    on_attached: Callable[[Attached], None] | None = None,
    problem_of: Callable[[UploaddError], Problem | UploaddError] | None = None,
) -> BodyPlan:
    """The plan of a body appending to a resumable upload: it goes into the
    upload's file; an interrupted one is recorded by the core, a long one
    checkpointed where it may be, and a newer request for the upload may
    end it (``append`` is the context unless one is given). ``limit``: the
    most one body may carry, whatever room the upload has."""

    def attached(body: Attached) -> None:
        append.writer.stoppable(body.cut)
        if on_attached is not None:
            on_attached(body)

    return BodyPlan(
        append.target,
        max_size=append.terms.room if limit is None else min(limit, append.terms.room),
        context=append if context is None else context,
        on_aborted=lambda written: Deferred.fromCoroutine(append.aborted(written)),
        on_checkpoint=(
            (lambda written: Deferred.fromCoroutine(append.checkpoint(written)))
            if append.checkpoints
            else None
        ),
        on_attached=attached,
        problem_of=problem_of,
    )


def _worded(
    reject: Callable[[Problem | UploaddError], None],
    word: Callable[[UploaddError], Problem | UploaddError] | None,
) -> Callable[[UploaddError], None]:
    """``reject`` with the refusal worded by the body's family."""
    if word is None:
        return reject
    wording = word
    return lambda error: reject(wording(error))


@attrs.frozen
class IngestLimits:
    max_upload_size: int
    max_body_size: int
    max_concurrent: int
    high_water: int
    low_water: int
    fsync: bool
    checkpoint: int = 0


class CappedBuffer(io.BytesIO):
    """``request.content`` for non-upload routes: refuses bodies over a cap."""

    def __init__(self, cap: int, on_overflow: Callable[[Problem], None]) -> None:
        super().__init__()
        self._cap = cap
        self._on_overflow = on_overflow

    def write(self, data: Any) -> int:
        if self.tell() + len(data) > self._cap:
            self._on_overflow(too_large(self._cap, "request body"))
            return 0
        return super().write(data)


class Holding(StreamedContent):
    """``request.content`` while a plan is being made: keeps the bytes that
    arrived with the headers (reading is paused, so at most one read)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.received = 0

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        self.received += len(data)

    def abort(self) -> None:
        self.chunks = []


@attrs.define
class IngestGate:
    _router: Router
    _tokens: TokenIssuer
    _run: Runner
    _progress: ProgressBoard
    _metrics: Metrics
    _clock: IReactorTime
    limits: IngestLimits
    in_flight: int = 0
    #: Sends on a request for an upload another instance holds.
    forwarder: Forwarder | None = None
    #: The memory all bodies share (None: each bounded by high water alone).
    budget: MemoryBudget | None = None
    #: Where plain bodies are read from their sockets (None: the writers).
    read: Runner | None = None

    def admit(
        self,
        request: Admitted,
        method: bytes,
        target: bytes,
        length: int | None,
    ) -> None:
        """Give ``request`` its content object, or raise the Problem refusing it."""
        found = self._router.match(method, target)
        # Kept for the Router, so the route is not matched twice.
        request.route = found
        kind = found.upload_kind if found is not None else None
        if found is None or kind is None:
            cap = self.limits.max_body_size
            if length is not None and length > cap:
                raise too_large(cap, "request body")
            request.content = CappedBuffer(cap, request.reject)
            return

        if getattr(found.family, "SIGNED", False):
            # The family checks its requests' own credentials (S3's
            # signatures) when it plans the body, and names the principal.
            principal = UNSIGNED
        else:
            action = getattr(found.family, "UPLOAD_ACTION", Action.CREATE)
            principal = require(
                authenticate(self._tokens, request.requestHeaders, target), action
            )
        limit = self.limits.max_upload_size
        # A family may word these refusals in its protocol's terms (the
        # resumable-upload draft's 413 carries the limits).
        word = getattr(found.family, "word_refusal", None) or (lambda h, p: p)
        if length is not None and length > limit:
            raise word(request.requestHeaders, too_large(limit))
        if self.in_flight >= self.limits.max_concurrent:
            raise word(
                request.requestHeaders,
                Problem(
                    503,
                    f"{self.in_flight} uploads are in progress, the most this "
                    "server takes at once; retry shortly",
                    headers={"Retry-After": "5"},
                ),
            )
        key = self._progress_key(request, target)
        admission = Admission(
            principal,
            found.endpoint or "",
            found.arguments,
            request.requestHeaders,
            target,
            length,
            limit,
            base_url(cast(IRequest, request), ""),
            method,
        )
        planning = Deferred.fromCoroutine(found.family.plan_body(admission))
        upload = Upload(principal, self._clock.seconds(), length, Deferred(), kind)
        request.upload = upload
        self.in_flight += 1
        self._metrics.bodies_in_flight.inc()
        if kind in ONE_REQUEST:
            self._metrics.uploads_started.labels(kind).inc()
        request.notifyFinish().addBoth(lambda _: self.release(upload))
        if key is not None:
            upload.progress = self._progress.start(key, principal.user_id, length)
        flow = request.body_flow()

        # The plan's outcome, success or failure, is taken here and handed on
        # whole: nothing after this point may turn a failure into a value.
        made: list[BodyPlan | Failure] = []
        planning.addBoth(made.append)
        upload.request_line = (method, target)
        if made:
            self._planned(request, upload, made[0], held=None)
            return
        # The plan waits on I/O: hold what already arrived, read no more, and
        # answer Expect: 100-continue only once the plan is made.
        held = Holding()
        request.content = held
        request.hold_continue()
        if flow is not None:
            flow.pauseProducing()
        planning.addCallback(lambda _: self._planned(request, upload, made[0], held))

    def _planned(
        self,
        request: Admitted,
        upload: Upload,
        result: BodyPlan | Failure,
        held: Holding | None,
    ) -> None:
        """Act on the plan's outcome; every path ends in a body being read,
        or in an answer to the client and the upload's slot released."""
        if not isinstance(result, Failure):
            try:
                self._attach(request, upload, result, held)
                return
            except Exception:
                failure = Failure()
                if upload.body is None:
                    self._abandon(result)
                else:
                    # The body streams into its sink already: ending it
                    # undoes the plan once, as for any body cut short.
                    upload.body.abort()
                result = failure
        elsewhere = result.value if isinstance(result.value, Elsewhere) else None
        if elsewhere is not None and self.forwarder is not None:
            if not request.processing:
                self._forward(request, upload, elsewhere.holder, held)
                return
            # The whole body came with the headers: the handler sends it
            # on with the rest of the request.
            request.content = io.BytesIO(b"".join(held.chunks if held else ()))
            upload.ready.errback(result)
            return
        problem = problems.from_failure(result)
        upload.ready.errback(Failure(problem))
        if request.processing:
            # The body is already complete and its handler waits on the plan:
            # it answers with the problem.
            return
        upload.ready.addErrback(lambda _: None)
        request.reject(problem)

    def _attach(
        self,
        request: Admitted,
        upload: Upload,
        plan: BodyPlan,
        held: Holding | None,
    ) -> None:
        """Give the admitted body its sink and start (or resume) reading."""
        flow = request.body_flow()
        if request.gone or flow is None:
            self._abandon(plan)
            return
        upload.plan = plan
        max_size = plan.max_size
        if max_size is None:
            max_size = self.limits.max_upload_size
        sink = UploadSink(
            plan.target,
            self._run,
            flow,
            FlowLimits(self.limits.high_water, self.limits.low_water, max_size),
            on_progress=lambda n: self._advanced(request, n),
            on_reject=_worded(request.reject, plan.problem_of),
            on_aborted=plan.on_aborted,
            checkpoints=(
                Checkpoints(self.limits.checkpoint, plan.on_checkpoint)
                if plan.on_checkpoint is not None and self.limits.checkpoint > 0
                else None
            ),
            budget=self.budget,
            read=self.read,
        )
        body: UploadSink | MultipartSink | DecodedBody = sink
        if plan.wrap is not None:
            body = plan.wrap(sink, request.reject)
        elif plan.boundary is not None:
            body = MultipartSink(sink, plan.boundary, on_reject=request.reject)
        upload.sink, upload.body = sink, body
        if plan.principal is not None:
            upload.principal = plan.principal
        request.content = body
        if plan.on_attached is not None:
            plan.on_attached(Attached(request, sink))
        if held is not None:
            for chunk in held.chunks:
                body.write(chunk)
        source = request.body_source()
        if source is not None and body is sink:
            # Only now: every byte the channel read before is in the sink.
            sink.read_directly(source)
        if held is not None:
            request.release_continue()
            # Unless the replay already filled the sink (or the budget).
            if sink.state is SinkState.RECEIVING and not sink.paused:
                flow.resumeProducing()
        upload.ready.callback(plan)

    def _forward(
        self, request: Admitted, upload: Upload, holder: str, held: Holding | None
    ) -> None:
        """The upload's bytes are on ``holder``: stream the body there as it
        arrives, and answer with what it answers."""
        assert self.forwarder is not None
        flow = request.body_flow()
        if request.gone or flow is None:
            return
        # Read on once the holder's connection takes bytes.
        flow.pauseProducing()
        body = ForwardedBody(flow, upload.expected)
        upload.body = body
        request.content = body
        for chunk in held.chunks if held is not None else ():
            body.write(chunk)
        request.release_continue()
        method, target = upload.request_line
        sending = Deferred.fromCoroutine(
            self.forwarder.send(request, method, target, holder, body)
        )
        upload.forwarded = sending
        sending.addBoth(request.relay)

    def _abandon(self, plan: BodyPlan) -> None:
        """The client left while the plan was made: undo the plan's file."""
        self._run(plan.target.discard).addCallbacks(
            plan.on_aborted, lambda f: log.failure("discarding a body failed", f)
        )

    def _progress_key(self, request: Admitted, target: bytes) -> str | None:
        header = request.requestHeaders.getRawHeaders(b"x-progress-id")
        key = header[0].decode("latin-1") if header else None
        key = (
            key
            or query_value(target, "UploadKey")
            or query_value(target, "X-Progress-ID")
        )
        return check_key(key) if key else None

    def _advanced(self, request: Admitted, size: int) -> None:
        upload = request.upload
        if upload is not None:
            self._metrics.bytes_received.labels(upload.protocol).inc(size)
        if upload is not None and upload.progress is not None and upload.body:
            self._progress.advance(upload.progress, upload.body.received)
        # Reading may be paused while the disk catches up; progress on disk is
        # progress, so the idle timeout starts again.
        request.progressed()

    def stored(self, upload: Upload, file_id: str | None = None) -> None:
        """The handler kept the body (as file ``file_id``, when it made one)."""
        upload.succeeded = True
        upload.file_id = file_id
        upload.took = self._clock.seconds() - upload.started

    def release(self, upload: Upload) -> None:
        """The request ended, however it ended: account for it once."""
        if upload.ended:
            return
        upload.ended = True
        self.in_flight -= 1
        self._metrics.bodies_in_flight.dec()
        if upload.sink is not None and upload.sink.state is not SinkState.DONE:
            assert upload.body is not None
            upload.body.abort()
        if upload.protocol in ONE_REQUEST:
            outcome = "stored" if upload.succeeded else "failed"
            self._metrics.upload_ended(upload.protocol, outcome, upload.took)
        if upload.progress is not None:
            error = None if upload.succeeded else "the upload did not complete"
            self._progress.end(upload.progress, upload.file_id, error)
