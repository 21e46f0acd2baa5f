"""The draft's upload resources on ``/uploads/``: creation, offset
retrieval, append and cancellation on the resumable core (see the package's
docstring)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

from noded.threads import Runner
from uploadd import errors
from uploadd.api import digests, fields
from uploadd.api.access import principal_of, query_value
from uploadd.api.forward import FORWARDED_BY
from uploadd.api.gate import (
    Admission,
    Attached,
    BodyPlan,
    IngestGate,
    append_plan,
    upload_of,
)
from uploadd.api.http import base_url, empty, json_body
from uploadd.api.metadata import parse_metadata
from uploadd.api.problems import Problem, bad_request
from uploadd.api.rufh.documents import Documents
from uploadd.api.rufh.versions import (
    INTEROP,
    LATEST,
    PARTIAL_UPLOAD,
    PROTOCOL,
    RESUMPTION,
    Interop,
    completeness,
    disposition_name,
    has_draft_fields,
    interop_of,
    unspoken,
)
from uploadd.auth.tokens import Action, Principal, TokenIssuer
from uploadd.deferreds import shield
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import FileRecord, UploadRecord
from uploadd.uploads import rules
from uploadd.uploads.appends import Append, begin_append
from uploadd.uploads.resumable import Resumable
from uploadd.uploads.rules import AppendAsk

log = Logger()


@attrs.frozen
class DraftBody:
    """A draft request's body and what answering it needs."""

    interop: Interop | None
    append: Append
    location: str
    #: The request made the upload (its 104 carries the upload's URL).
    created: bool
    #: The client named its interop version: only then may 104s go to it
    #: ("MUST NOT send a 104 ... when the interop version is missing").
    announce: bool = True
    #: Sent on by another instance, whose client does not hear 1xx
    #: responses (Twisted's drops them): no progress for it.
    relayed: bool = False


@attrs.define
class DraftUploads:
    """The draft's side of ``/uploads/`` (the tus family delegates here)."""

    _uploads: Resumable
    _blobs: BlobStore
    _run: Runner
    _tokens: TokenIssuer
    _gate: IngestGate
    _clock: IReactorTime
    #: The JSON document of a file, as ``GET /files/<id>`` shows it.
    _describe: Callable[[str, FileRecord], Awaitable[dict[str, Any]]]
    _public_url: str = ""
    progress_interval: float = 1.0
    max_append_size: int = 0
    min_append_size: int = 0

    _documents: Documents = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._documents = Documents(
            self._gate.limits.max_upload_size,
            self._uploads.expire_after,
            self._clock,
            self.max_append_size,
            self.min_append_size,
        )

    # -- bodies ------------------------------------------------------------------

    def word(self, headers: Headers, problem: Problem) -> Problem:
        """``problem`` as the draft answers it to a request with ``headers``."""
        return self._documents.problem(problem, interop_of(headers))

    @staticmethod
    def planned(plan: BodyPlan) -> bool:
        """Whether a body was planned here (its answer is given here)."""
        return isinstance(plan.context, DraftBody | Replay)

    async def plan_body(
        self, admission: Admission, name: str | None = None
    ) -> BodyPlan:
        """The plan of a creation (``POST /uploads/``, or a ``PUT`` of a file
        called ``name``) or an append."""
        interop = interop_of(admission.headers)
        with self._worded(interop):
            if admission.endpoint != "patch":
                return await self._plan_create(admission, interop, name)
            return await self._plan_append(admission, interop)

    @contextlib.contextmanager
    def _worded(self, interop: Interop | None) -> Iterator[None]:
        """Refusals raised inside become the draft's documents (one held
        elsewhere goes on to its holder as it is)."""
        try:
            yield
        except errors.Elsewhere:
            raise
        except (errors.UploaddError, Problem) as refused:
            raise self._documents.problem(refused, interop) from None

    def _location(self, admission: Admission, upload_id: str) -> str:
        base = (self._public_url or admission.origin).rstrip("/")
        return f"{base}/uploads/{upload_id}"

    def _check_sizes(
        self, body: int | None, length: int | None, completes: bool
    ) -> None:
        """The body and the upload's length within the announced limits."""
        limit = self._gate.limits.max_upload_size
        rules.check_length(length, limit)
        if body is None:
            return
        if self.max_append_size and body > self.max_append_size:
            raise errors.TooLarge(self.max_append_size, "request content")
        if self.min_append_size and 0 < body < self.min_append_size and not completes:
            raise errors.TooLarge(
                self.min_append_size,
                f"request content of {body} bytes is under the least one "
                "request may carry; limit",
            )

    def _stated_length(
        self,
        headers: Headers,
        interop: Interop,
        offset: int,
        complete: bool,
        body: int | None,
    ) -> int | None:
        """The upload's length as this request states it (``Upload-Length``,
        or the offset plus the content of a completing request), or
        inconsistent-upload-length when the two disagree."""
        stated = fields.integer(headers, "Upload-Length")
        implied = offset + body if complete and body is not None else None
        if stated is not None and implied is not None and stated != implied:
            raise self._documents.inconsistent(
                f"Upload-Length {stated} is not the offset {offset} plus the "
                f"{body} bytes of a request completing the upload",
                interop,
            )
        return stated if stated is not None else implied

    async def _plan_create(
        self, admission: Admission, interop: Interop | None, name: str | None
    ) -> BodyPlan:
        headers, owner = admission.headers, admission.principal
        body = admission.length
        if interop is None:
            # A version this server does not speak: an ordinary upload of
            # the body, whatever lengths the draft's fields state.
            complete, length = True, body
        else:
            said = completeness(headers, interop)
            if said is None:
                raise bad_request("creating an upload needs Upload-Complete: ?0 or ?1")
            complete = said
            length = self._stated_length(headers, interop, 0, complete, body)
        self._check_sizes(body, length, complete)
        metadata = self._metadata(admission)
        if name:
            metadata["filename"] = name
        record = await self._uploads.create(owner, PROTOCOL, length, metadata)
        ask = AppendAsk(
            0,
            length,
            complete,
            body,
            named="Upload-Offset",
            explicit=interop is not None,
        )
        try:
            append = begin_append(
                self._uploads,
                record,
                ask,
                admission.max_upload_size,
                digests.content_check(headers),
                created=interop is None,
                whole=digests.repr_check(headers),
            )
        except BaseException:
            # Refused before anyone heard of the upload: it goes.
            await self._uploads.terminate(record, "failed")
            raise
        location = self._location(admission, record.id)
        announce = headers.hasHeader(INTEROP.encode("ascii"))
        return self._plan(DraftBody(interop, append, location, True, announce))

    def _metadata(self, admission: Admission) -> dict[str, str]:
        """File name, type, parent and renditions of a new upload: from
        ``Content-Disposition`` and ``Content-Type`` as the draft says, and
        the query as for other uploads."""
        headers, target = admission.headers, admission.target
        # tus-js-client names the file as in tus, whatever protocol it speaks.
        metadata = parse_metadata(fields.raw(headers, "Upload-Metadata"))
        name = disposition_name(fields.raw(headers, "Content-Disposition"))
        name = name or query_value(target, "name")
        if name:
            metadata["filename"] = name
        ctype = fields.raw(headers, "Content-Type")
        if (
            ctype
            and "filetype" not in metadata
            and ctype.split(";")[0].strip().lower() != PARTIAL_UPLOAD.decode()
        ):
            metadata["filetype"] = ctype
        for key in ("parent", "renditions"):
            value = query_value(target, key)
            if value:
                metadata[key] = value
        return metadata

    async def _plan_append(
        self, admission: Admission, interop: Interop | None
    ) -> BodyPlan:
        headers, owner = admission.headers, admission.principal
        upload_id = admission.arguments["upload_id"]
        _, record = await self._identified(headers, lambda: owner, upload_id)
        if interop is None:
            raise unspoken(headers)
        rules.check_appendable(record)
        if interop.partial_type:
            ctype = fields.raw(headers, "Content-Type") or ""
            if ctype.split(";")[0].strip().lower().encode() != PARTIAL_UPLOAD:
                raise Problem(
                    415, "an append is Content-Type: application/partial-upload"
                )
        offset = fields.integer(headers, "Upload-Offset")
        if offset is None:
            raise bad_request("an append needs Upload-Offset: the upload's offset")
        complete = completeness(headers, interop)
        if complete is None:
            raise bad_request("an append needs Upload-Complete: ?0 or ?1")
        body = admission.length
        # A request still streaming into the upload is over: its client
        # has moved on to this one.
        writer = await self._uploads.writers.take_over(record.id)
        try:
            record = await self._uploads.load(owner, upload_id)
            if record.state != rules.OPEN:
                # A client whose answer to the completing request was lost
                # asks again (the latest draft); every version is answered
                # so, rather than refused, as clients of older ones expect.
                if replayable(record, offset, complete, body):
                    writer.release()
                    return self._replay(record)
                raise self._documents.completed(record, interop)
            if offset != record.received:
                raise errors.Conflict(
                    f"Upload-Offset {offset} is not the upload's offset "
                    f"{record.received}; resume from {record.received}",
                    offset=record.received,
                )
            length = self._stated_length(headers, interop, offset, complete, body)
            if length is not None and record.length not in (None, length):
                raise self._documents.inconsistent(
                    f"the upload's length is {record.length} bytes, not {length}",
                    interop,
                )
            if length is not None and length < record.received:
                raise self._documents.inconsistent(
                    f"the upload already has {record.received} bytes, more than "
                    f"the length {length}",
                    interop,
                )
            self._check_sizes(body, length, complete)
            ask = AppendAsk(
                offset, length, complete, body, named="Upload-Offset", explicit=True
            )
            append = begin_append(
                self._uploads,
                record,
                ask,
                admission.max_upload_size,
                digests.content_check(headers),
                whole=digests.repr_check(headers),
                writer=writer,
            )
        except BaseException as refused:
            writer.release()
            if isinstance(refused, errors.Conflict):
                raise self._documents.problem(
                    refused, interop, provided=offset
                ) from None
            raise
        location = self._location(admission, record.id)
        relayed = headers.hasHeader(FORWARDED_BY)
        announce = headers.hasHeader(INTEROP.encode("ascii"))
        return self._plan(
            DraftBody(interop, append, location, False, announce, relayed)
        )

    def _replay(self, record: UploadRecord) -> BodyPlan:
        """A plan for an empty body whose answer is the final one again."""
        staging = BlobFile(self._blobs.staging_path(uuid.uuid4().hex), fsync=False)
        return BodyPlan(staging, max_size=0, context=Replay(record, staging))

    def _plan(self, body: DraftBody) -> BodyPlan:
        return append_plan(
            body.append,
            limit=self.max_append_size or None,
            context=body,
            on_attached=lambda attached: self._attached(body, attached),
            problem_of=lambda error: self._documents.problem(error, body.interop),
        )

    def _attached(self, body: DraftBody, attached: Attached) -> None:
        """The body streams: a spoken version hears of the upload now
        (creation) and of its durable offset as it grows."""
        interop = body.interop
        if interop is None or not body.announce:
            return
        if body.created:
            announced = [(INTEROP, str(interop.version)), ("Location", body.location)]
            limit = self._documents.limits(interop)
            if limit is not None:
                announced.append(("Upload-Limit", limit))
            attached.inform(*RESUMPTION, announced)
        if not interop.progress or self.progress_interval <= 0 or body.relayed:
            return
        start = body.append.record.received
        told = [start]

        def tell() -> None:
            offset = start + attached.durable
            if offset > told[0]:
                told[0] = offset
                attached.inform(
                    *RESUMPTION,
                    [(INTEROP, str(interop.version)), ("Upload-Offset", str(offset))],
                )

        loop = LoopingCall(tell)
        loop.clock = self._clock
        loop.start(self.progress_interval, now=False)
        attached.finished().addBoth(lambda _: loop.stop() if loop.running else None)

    # -- answers -----------------------------------------------------------------

    async def finish(self, request: IRequest, plan: BodyPlan, digest: Digest) -> bytes:
        """The answer to a creation or an append whose body has arrived."""
        upload = upload_of(request)
        if isinstance(plan.context, Replay):
            await self._run(plan.context.staging.path.unlink, True)
            self._gate.stored(upload, plan.context.record.file_id)
            interop = interop_of(request.requestHeaders)
            return await self._final(request, plan.context.record, None, interop)
        body: DraftBody = plan.context
        least = self.min_append_size
        if least and 0 < digest.size < least and not body.append.terms.completes:
            # A body whose size was not known before it arrived (chunked).
            await body.append.refuse()
            raise self._documents.problem(
                Problem(
                    413,
                    f"the request carried {digest.size} bytes, under the "
                    f"min-append-size of {least}; it was not appended",
                ),
                body.interop,
            )
        with self._worded(body.interop):
            landing = body.append.land(upload.principal, digest)
            record, stored = await shield(Deferred.fromCoroutine(landing))
        self._gate.stored(upload, stored.id if stored else None)
        if record.state != rules.OPEN:
            return await self._final(request, record, stored, body.interop)
        assert body.interop is not None
        for name, value in self._documents.state(body.interop, False, record):
            request.setHeader(name.encode("ascii"), value.encode("latin-1"))
        if body.created:
            request.setHeader(b"location", body.location.encode("ascii"))
            return empty(request, 201)
        return empty(request, body.interop.appended)

    async def _final(
        self,
        request: IRequest,
        record: UploadRecord,
        stored: FileRecord | None,
        interop: Interop | None,
    ) -> bytes:
        """The answer of the resource the upload was made to: the stored file."""
        if stored is None:
            found = await self._uploads.file_of(record)
            if found is None:
                raise errors.Gone(f"the file upload {record.id} became is gone")
            stored = found
        base = base_url(request, self._public_url)
        url = f"{base}/files/{quote(stored.id)}"
        request.setHeader(b"location", url.encode("ascii"))
        request.setHeader(b"link", f'<{url}>; rel="file"'.encode("ascii"))
        if digests.wants_repr_digest(request.requestHeaders):
            request.setHeader(b"repr-digest", digests.repr_digest_field(stored.sha256))
        if interop is not None:
            for name, value in self._documents.state(interop, True, record):
                request.setHeader(name.encode("ascii"), value.encode("latin-1"))
        return json_body(request, 201, await self._describe(base, stored))

    async def _identified(
        self,
        headers: Headers,
        caller: Callable[[], Principal],
        upload_id: str,
    ) -> tuple[Principal, UploadRecord]:
        """The caller and the upload a request names; NotDraft for a request
        carrying none of the draft's fields unless it names, to a caller who
        may see it, an upload the draft made (tus answers the rest, 412)."""
        fielded = has_draft_fields(headers)
        try:
            owner = caller()
            record = await self._uploads.load(owner, upload_id)
        except errors.Elsewhere:
            raise
        except (errors.UploaddError, Problem):
            if not fielded:
                raise NotDraft(upload_id) from None
            raise
        if not fielded and record.protocol != PROTOCOL:
            raise NotDraft(upload_id)
        return owner, record

    @staticmethod
    def _check_no_state(headers: Headers, interop: Interop) -> None:
        """Drafts -01 to -05: retrieval and cancellation carry no offset or
        completeness (400)."""
        named = ("Upload-Offset", "Upload-Complete", "Upload-Incomplete")
        if interop.bare_requests and any(headers.hasHeader(n.encode()) for n in named):
            raise bad_request(
                "offset retrieval and cancellation carry no Upload-Offset or "
                "completeness field"
            )

    async def retrieve(self, request: IRequest, upload_id: str) -> bytes:
        """Offset retrieval (HEAD, or GET with no content)."""
        headers = request.requestHeaders
        interop = interop_of(headers)
        with self._worded(interop):
            owner, record = await self._settled(
                request, upload_id, interop, spoken_only=True
            )
            record = await self._uploads.load(owner, upload_id)
        assert interop is not None  # refused above when not spoken
        complete = record.state != rules.OPEN and record.concat != rules.PARTIAL
        for name, value in self._documents.state(interop, complete, record):
            request.setHeader(name.encode("ascii"), value.encode("latin-1"))
        if record.length is not None:
            request.setHeader(b"upload-length", b"%d" % record.length)
        limit = self._documents.limits(interop, record)
        if limit is not None:
            request.setHeader(b"upload-limit", limit.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return empty(request, 204)

    async def cancel(self, request: IRequest, upload_id: str) -> bytes:
        """Cancellation: a body still streaming in is ended first."""
        interop = interop_of(request.requestHeaders)
        with self._worded(interop):
            owner, _ = await self._settled(request, upload_id, interop)
            await self._uploads.delete(owner, upload_id)
        return empty(request, 204)

    async def _settled(
        self,
        request: IRequest,
        upload_id: str,
        interop: Interop | None,
        spoken_only: bool = False,
    ) -> tuple[Principal, UploadRecord]:
        """The caller and the upload a retrieval or cancellation names, once
        any body still streaming into it has ended and been recorded (a
        version not spoken is refused first, if ``spoken_only``)."""
        headers = request.requestHeaders
        owner, record = await self._identified(
            headers,
            lambda: principal_of(self._tokens, request, Action.CREATE),
            upload_id,
        )
        if interop is None and spoken_only:
            raise unspoken(headers)
        if interop is not None:
            self._check_no_state(headers, interop)
        await self._uploads.writers.quiet(record.id)
        return owner, record

    def options(self, request: IRequest) -> None:
        """What OPTIONS adds for the draft: the limits of a new upload."""
        interop = interop_of(request.requestHeaders) or LATEST
        limit = self._documents.limits(interop) or self._documents.limits(LATEST)
        assert limit is not None
        request.setHeader(b"upload-limit", limit.encode("ascii"))
        request.setHeader(b"accept-patch", PARTIAL_UPLOAD)


@attrs.frozen
class Replay:
    """An append to a completed upload asking only for the final answer
    again (the response that completed it was lost); its empty body goes
    to a staging file that is then removed."""

    record: UploadRecord
    staging: BlobFile


class NotDraft(Exception):
    """A request without the draft's fields about an upload tus made: tus
    answers it."""


def replayable(
    record: UploadRecord, offset: int, complete: bool, body: int | None
) -> bool:
    """A valid append to a completed upload: at its end, nothing in it,
    saying it completes the upload."""
    return (
        record.state == rules.COMPLETE
        and record.file_id is not None
        and offset == record.received
        and complete
        and body == 0
    )
