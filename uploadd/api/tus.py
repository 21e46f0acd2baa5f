"""``/uploads/``: the tus 1.0.0 resumable upload protocol with every extension,
and the IETF resumable-upload draft beside it (:mod:`uploadd.api.rufh`).

Core (HEAD, PATCH), creation, creation-with-upload, creation-defer-length,
expiration, checksum (sha1, md5, sha256), termination and concatenation.
Two PATCHes on one upload never interleave: the second is answered 423
Locked while the first runs (HEAD shows how far the first got).

Beside tus's own ``Upload-Checksum``, a body may be vouched for with RFC
9530's ``Content-Digest`` and the whole file with ``Repr-Digest`` (kept
until the request that completes the upload; on a final upload, checked
once its parts are joined), and the completing request answers
``Repr-Digest`` when asked with ``Want-Repr-Digest``: the same checks as
every upload route (``uploadd/api/digests.py``).

This module translates tus headers to and from the resumable core
(``uploadd/uploads/``), which holds every rule of offsets, lengths, writers,
expiry and completion; what is left here is the protocol's syntax.

The draft shares the routes: a request carrying ``Tus-Resumable`` is tus;
one without it goes to the draft, which hands back (``NotDraft``) one that
carries none of its fields about an upload tus made, and tus then answers
412 as its specification says.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from typing import Any, ClassVar
from urllib.parse import quote

import attrs
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.http import datetimeToString
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

from noded.threads import Runner
from uploadd.api import digests, problems
from uploadd.api.access import principal_of
from uploadd.api.gate import (
    Admission,
    BodyPlan,
    IngestGate,
    append_plan,
    upload_of,
)
from uploadd.api.http import base_url, empty, json_body, timestamp
from uploadd.api.metadata import encode_metadata, parse_metadata
from uploadd.api.problems import Problem, bad_request
from uploadd.api.rufh import PROTOCOL, DraftUploads, NotDraft, speaks
from uploadd.auth.tokens import Action, Principal, TokenIssuer
from uploadd.deferreds import shield
from uploadd.ingest.blob import BlobFile
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import FileRecord, UploadRecord
from uploadd.uploads import rules
from uploadd.uploads.appends import Append, ReprCheck, appendable, begin_append
from uploadd.uploads.resumable import Resumable
from uploadd.uploads.rules import AppendAsk

VERSION = "1.0.0"
EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,expiration,"
    "checksum,termination,concatenation"
)
OFFSET_TYPE = b"application/offset+octet-stream"
_SIZE = re.compile(r"^[0-9]{1,19}$")

log = Logger()


def header(headers: Headers, name: str) -> str | None:
    values = headers.getRawHeaders(name.encode("ascii"))
    return values[0].decode("latin-1").strip() if values else None


def check_version(headers: Headers) -> None:
    if header(headers, "Tus-Resumable") != VERSION:
        raise Problem(
            412,
            f"this server speaks tus {VERSION}; send Tus-Resumable: {VERSION}",
            headers={"Tus-Version": VERSION, "Tus-Resumable": VERSION},
        )


def parse_size(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    if not _SIZE.match(text):
        raise bad_request(
            f"{name} must be a non-negative integer of at most 19 digits",
            **{name: text[:40]},
        )
    return int(text)


def listed(base: str, record: UploadRecord) -> dict[str, Any]:
    """An unfinished upload as ``GET /uploads/`` lists it."""
    metadata = rules.shown(record.metadata)
    return {
        "id": record.id,
        "url": f"{base}/uploads/{record.id}",
        "name": metadata.get("filename") or metadata.get("name"),
        "size": record.length,
        "offset": record.received,
        "fingerprint": metadata.get("fingerprint"),
        "concat": record.concat,
        "protocol": record.protocol,
        "complete": record.state == rules.COMPLETE,
        "created_at": timestamp(record.created_at),
        "expires_at": (
            None if record.expires_at is None else timestamp(record.expires_at)
        ),
        "metadata": metadata,
    }


def upload_id_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


@attrs.frozen
class Concatenation:
    """The creation of a final upload: no body (its empty file only makes the
    gate refuse one), the partial uploads it joins, and the digest the
    client vouched for the joined file with."""

    target: BlobFile
    parts: tuple[str, ...]
    whole: ReprCheck | None = None


@attrs.define(slots=False)
class TusAPI:
    app = Klein()
    problems.install(app)
    UPLOAD_ROUTES: ClassVar[dict[str, str]] = {"create": "tus", "patch": "tus"}

    _uploads: Resumable
    _blobs: BlobStore
    _run: Runner
    _tokens: TokenIssuer
    _gate: IngestGate
    _public_url: str = ""
    #: The IETF draft's side of the same routes.
    _draft: DraftUploads | None = None

    # -- headers every answer carries -----------------------------------------

    def _tus_headers(
        self, request: IRequest, record: UploadRecord | None = None
    ) -> None:
        request.setHeader(b"tus-resumable", VERSION.encode())
        request.setHeader(b"cache-control", b"no-store")
        if record is not None and record.state == "open" and record.expires_at:
            request.setHeader(
                b"upload-expires", datetimeToString(int(record.expires_at))
            )

    def _principal(self, request: IRequest, action: Action) -> Principal:
        check_version(request.requestHeaders)
        return principal_of(self._tokens, request, action)

    # -- discovery -------------------------------------------------------------

    @app.route("/uploads/", methods=["OPTIONS"])
    @app.route("/uploads/<upload_id>", methods=["OPTIONS"])
    def options(self, request: IRequest, upload_id: str = "") -> bytes:
        if self._draft is not None:
            self._draft.options(request)
        self._tus_headers(request)
        request.setHeader(b"tus-version", VERSION.encode())
        request.setHeader(b"tus-extension", EXTENSIONS.encode())
        request.setHeader(b"tus-max-size", b"%d" % self._gate.limits.max_upload_size)
        request.setHeader(
            b"tus-checksum-algorithm", ",".join(digests.CHECKSUMS).encode()
        )
        return empty(request, 204)

    # -- bodies ----------------------------------------------------------------

    def word_refusal(self, headers: Headers, problem: Problem) -> Problem:
        """A refusal the gate makes before planning, in the draft's terms
        for a draft request (its limits on a 413), else as it is."""
        if self._draft is not None and speaks(headers):
            return self._draft.word(headers, problem)
        return problem

    async def plan_body(self, admission: Admission) -> BodyPlan:
        headers = admission.headers
        draft = self._draft_for(headers, creating=admission.endpoint == "create")
        if draft is not None:
            with contextlib.suppress(NotDraft):
                return await draft.plan_body(admission)
        check_version(headers)
        if admission.endpoint == "create":
            return await self._plan_create(admission)
        return await self._plan_patch(admission)

    async def _plan_create(self, admission: Admission) -> BodyPlan:
        headers, owner = admission.headers, admission.principal
        limit = admission.max_upload_size
        has_body = bool(admission.length) or (
            admission.length is None
            and bool(headers.getRawHeaders(b"transfer-encoding"))
        )
        concat = header(headers, "Upload-Concat")
        length = parse_size(header(headers, "Upload-Length"), "Upload-Length")
        deferred = header(headers, "Upload-Defer-Length")
        metadata = parse_metadata(header(headers, "Upload-Metadata"))
        if concat is not None and concat.startswith("final"):
            if has_body or length is not None:
                raise bad_request("a final upload has no body and no Upload-Length")
            urls = concat.partition(";")[2].split()
            if not urls:
                raise bad_request("Upload-Concat: final;URL URL... names no uploads")
            joined = 0
            for part in urls:
                found = await self._uploads.load(
                    owner, upload_id_of(part), anywhere=True
                )
                joined += found.length if found.length is not None else found.received
            # Parts each under the limit may not add up to a file over it.
            rules.check_length(joined, limit)
            whole = digests.repr_check(headers)
            staging = BlobFile(self._blobs.staging_path(uuid.uuid4().hex), fsync=False)
            parts = tuple(upload_id_of(u) for u in urls)
            joining = Concatenation(staging, parts, whole)
            return BodyPlan(staging, max_size=0, context=joining)
        if concat not in (None, "partial"):
            raise bad_request("Upload-Concat is 'partial' or 'final;URL URL...'")
        if length is None and deferred != "1":
            raise bad_request("send Upload-Length, or Upload-Defer-Length: 1")
        if length is not None and deferred is not None:
            raise bad_request("send Upload-Length or Upload-Defer-Length, not both")
        rules.check_length(length, limit)
        checksum = digests.body_check(headers, header(headers, "Upload-Checksum"))
        whole = digests.repr_check(headers)
        if has_body:
            self._check_offset_type(headers)
        record = await self._uploads.create(
            owner, "tus", length, metadata, concat=concat
        )
        append = begin_append(
            self._uploads,
            record,
            AppendAsk(0),
            limit,
            checksum,
            created=True,
            whole=whole,
        )
        return append_plan(append)

    async def _plan_patch(self, admission: Admission) -> BodyPlan:
        headers, owner = admission.headers, admission.principal
        self._check_offset_type(headers)
        record = await appendable(
            self._uploads, owner, admission.arguments["upload_id"]
        )
        offset = parse_size(header(headers, "Upload-Offset"), "Upload-Offset")
        if offset is None:
            raise bad_request("PATCH needs an Upload-Offset header")
        ask = AppendAsk(
            offset,
            length=parse_size(header(headers, "Upload-Length"), "Upload-Length"),
            body_length=admission.length,
            named="Upload-Offset",
        )
        checksum = digests.body_check(headers, header(headers, "Upload-Checksum"))
        append = begin_append(
            self._uploads,
            record,
            ask,
            admission.max_upload_size,
            checksum,
            whole=digests.repr_check(headers),
        )
        return append_plan(append)

    @staticmethod
    def _check_offset_type(headers: Headers) -> None:
        ctype = headers.getRawHeaders(b"content-type")
        if not ctype or ctype[0].split(b";")[0].strip().lower() != OFFSET_TYPE:
            raise Problem(
                415, "a tus body is Content-Type: application/offset+octet-stream"
            )

    def _draft_for(self, headers: Headers, creating: bool) -> DraftUploads | None:
        """The draft's side, for a request that may be the draft's."""
        if self._draft is None or headers.hasHeader(b"tus-resumable"):
            return None
        if creating and not speaks(headers):
            return None
        return self._draft

    @app.route("/uploads/", methods=["POST"], endpoint="create")
    async def create(self, request: IRequest) -> bytes:
        upload = upload_of(request)
        plan, _, digest = await upload.complete()
        if self._draft is not None and self._draft.planned(plan):
            return await self._draft.finish(request, plan, digest)
        context: Append | Concatenation = plan.context
        if isinstance(context, Concatenation):
            await self._run(context.target.path.unlink, True)
            metadata = parse_metadata(header(request.requestHeaders, "Upload-Metadata"))
            assembling = self._uploads.assemble(
                upload.principal, context.parts, metadata, context.whole
            )
            record, stored = await shield(Deferred.fromCoroutine(assembling))
        else:
            landing = context.land(upload.principal, digest)
            record, stored = await shield(Deferred.fromCoroutine(landing))
        self._gate.stored(upload, stored.id if stored else None)
        self._tus_headers(request, record)
        base = base_url(request, self._public_url)
        request.setHeader(b"location", f"{base}/uploads/{record.id}".encode("ascii"))
        if stored is not None:
            self._file_link(request, base, stored)
        if digest.size or record.concat != "final":
            request.setHeader(b"upload-offset", b"%d" % record.received)
        return empty(request, 201)

    @app.route("/uploads/<upload_id>", methods=["PATCH"], endpoint="patch")
    async def patch(self, request: IRequest, upload_id: str) -> bytes:
        upload = upload_of(request)
        plan, _, digest = await upload.complete()
        if self._draft is not None and self._draft.planned(plan):
            return await self._draft.finish(request, plan, digest)
        append: Append = plan.context
        landing = append.land(upload.principal, digest)
        record, stored = await shield(Deferred.fromCoroutine(landing))
        self._gate.stored(upload, stored.id if stored else None)
        self._tus_headers(request, record)
        request.setHeader(b"upload-offset", b"%d" % record.received)
        if stored is not None:
            self._file_link(request, base_url(request, self._public_url), stored)
        return empty(request, 204)

    @staticmethod
    def _file_link(request: IRequest, base: str, stored: FileRecord) -> None:
        """Tell the client of the request that finished an upload which file
        it became (tus itself has no header for that), and that file's
        digest when it asks with Want-Repr-Digest."""
        link = f'<{base}/files/{quote(stored.id)}>; rel="file"'
        request.setHeader(b"link", link.encode("ascii"))
        if digests.wants_repr_digest(request.requestHeaders):
            request.setHeader(b"repr-digest", digests.repr_digest_field(stored.sha256))

    # -- state -----------------------------------------------------------------

    @app.route("/uploads/", methods=["GET"])
    async def unfinished(self, request: IRequest) -> bytes:
        """The caller's unfinished uploads (tus, the draft's, S3 multipart
        uploads: not their parts), from the store every instance
        shares: another browser or machine finds the one to continue by its
        ``fingerprint`` (metadata its client chose) and goes on from
        ``offset`` at ``url``, whichever instance holds the bytes."""
        owner = principal_of(self._tokens, request, Action.CREATE)
        base = base_url(request, self._public_url)
        found = [
            r
            for r in await self._uploads.unfinished(owner)
            if r.protocol in ("tus", PROTOCOL, "s3")
        ]
        request.setHeader(b"cache-control", b"no-store")
        return json_body(
            request,
            200,
            {"count": len(found), "results": [listed(base, r) for r in found]},
        )

    @app.route("/uploads/<upload_id>", methods=["GET"])
    async def retrieve(self, request: IRequest, upload_id: str) -> bytes:
        """The draft's offset retrieval by GET (tus has none)."""
        if request.method == b"HEAD":
            # werkzeug gives HEAD to a GET route too.
            return await self.head(request, upload_id)
        if self._draft is not None:
            with contextlib.suppress(NotDraft):
                return await self._draft.retrieve(request, upload_id)
        principal_of(self._tokens, request, Action.CREATE)
        raise Problem(405, "a tus upload's offset is retrieved by HEAD")

    @app.route("/uploads/<upload_id>", methods=["HEAD"])
    async def head(self, request: IRequest, upload_id: str) -> bytes:
        draft = self._draft_for(request.requestHeaders, creating=False)
        if draft is not None:
            with contextlib.suppress(NotDraft):
                return await draft.retrieve(request, upload_id)
        owner = self._principal(request, Action.CREATE)
        record = await self._uploads.load(owner, upload_id)
        self._tus_headers(request, record)
        request.setHeader(b"upload-offset", b"%d" % record.received)
        if record.length is None:
            request.setHeader(b"upload-defer-length", b"1")
        else:
            request.setHeader(b"upload-length", b"%d" % record.length)
        metadata = rules.shown(record.metadata)
        if metadata:
            request.setHeader(b"upload-metadata", encode_metadata(metadata).encode())
        if record.concat == "partial":
            request.setHeader(b"upload-concat", b"partial")
        elif record.concat == "final":
            base = base_url(request, self._public_url)
            parts = " ".join(f"{base}/uploads/{part}" for part in record.parts)
            request.setHeader(b"upload-concat", f"final;{parts}".encode())
        return empty(request, 200)

    @app.route("/uploads/<upload_id>", methods=["DELETE"])
    async def terminate(self, request: IRequest, upload_id: str) -> bytes:
        draft = self._draft_for(request.requestHeaders, creating=False)
        if draft is not None:
            with contextlib.suppress(NotDraft):
                return await draft.cancel(request, upload_id)
        owner = self._principal(request, Action.CREATE)
        await self._uploads.delete(owner, upload_id)
        self._tus_headers(request)
        return empty(request, 204)
