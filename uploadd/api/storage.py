"""``/storage/``: chunked uploads by Content-Range, as seed 003's clients send them.

    PUT  /storage/tmp-upload/        first chunk (Content-Range, multipart 'file')
    PUT  /storage/tmp-upload/<id>/   further chunks, in any order, in parallel
    POST /storage/tmp-upload/<id>/   complete (optional 'md5' of the whole file)
    POST /storage/tmp-upload/        the whole file at once (optional 'md5')
    GET  /storage/files/             the user's files
    GET  /storage/download/<id>/     the bytes, with Range

Chunks may arrive out of order and at once as long as they do not overlap;
completion checks that every byte is covered. Clients that number bytes from
1 (``bytes 1-N/N``) are recognised on their first chunk.

This module translates Content-Range headers and form fields to and from the
resumable core's spans (``uploadd/uploads/``), which holds the rules.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import attrs
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from uploadd.api import problems
from uploadd.api.access import owned, principal_of
from uploadd.api.files import serve
from uploadd.api.gate import Admission, BodyPlan, IngestGate, upload_of
from uploadd.api.http import (
    arg,
    base_url,
    json_body,
    paging,
    read_fields,
    timestamp,
)
from uploadd.api.problems import bad_request
from uploadd.auth.tokens import Action, Principal, TokenIssuer
from uploadd.cluster.locator import Locator
from uploadd.deferreds import shield
from uploadd.ingest.multipart import MultipartSink, boundary_of
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import FileRecord, IMetadataStore, UploadRecord
from uploadd.uploads.ranges import covered_prefix
from uploadd.uploads.resumable import Resumable
from uploadd.uploads.rules import SpanAsk
from uploadd.uploads.spans import SpanWrite, begin_span, complete, create_with_span

UPLOADING, COMPLETE = 1, 2
# Positions of at most 19 digits: past any file, and int() of thousands of
# digits would raise.
_CONTENT_RANGE = re.compile(
    r"^\s*bytes\s+([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19})\s*$"
)

log = Logger()


@attrs.frozen
class ContentRange:
    """A parsed ``Content-Range: bytes first-last/total`` of an upload chunk."""

    first: int
    last: int
    total: int

    def ask(self, base: int) -> SpanAsk:
        """The chunk as the core's span, for a client numbering bytes from
        ``base``."""
        return SpanAsk(
            self.first - base, self.last - base + 1, self.total, named="Content-Range"
        )

    def guess_base(self) -> int:
        """1 for clients that count bytes from 1 (``bytes 1-N/N``), else 0."""
        return 1 if self.first >= 1 and self.last == self.total else 0


def parse_content_range(header: bytes | None) -> ContentRange:
    if header is None:
        raise bad_request(
            "a chunk needs a Content-Range: bytes FIRST-LAST/TOTAL header"
        )
    match = _CONTENT_RANGE.match(header.decode("latin-1"))
    if not match:
        raise bad_request(
            "Content-Range must be bytes FIRST-LAST/TOTAL",
            content_range=header.decode("latin-1"),
        )
    first, last, total = (int(group) for group in match.groups())
    if last < first or last > total:
        raise bad_request(
            "Content-Range is not a span of the total",
            content_range=header.decode("latin-1"),
        )
    return ContentRange(first, last, total)


@attrs.define(slots=False)
class StorageAPI:
    app = Klein()
    problems.install(app)
    UPLOAD_ROUTES: ClassVar[dict[str, str]] = {
        "put_first": "range",
        "put_chunk": "range",
        "post_whole": "range",
    }

    _uploads: Resumable
    _store: IMetadataStore
    _blobs: BlobStore
    _tokens: TokenIssuer
    _gate: IngestGate
    _locator: Locator
    _public_url: str = ""
    _page_size: int = 50

    # -- chunk bodies ----------------------------------------------------------

    async def plan_body(self, admission: Admission) -> BodyPlan:
        headers, owner = admission.headers, admission.principal
        limit = admission.max_upload_size
        ctype = headers.getRawHeaders(b"content-type")
        boundary = None
        if ctype and ctype[0].lower().startswith(b"multipart/"):
            boundary = boundary_of(ctype[0])
        header = headers.getRawHeaders(b"content-range")
        if admission.endpoint == "post_whole" and header is None:
            ask = SpanAsk(0, None, None, named="Content-Range")
            write = await create_with_span(self._uploads, owner, "range", ask, limit)
        else:
            content_range = parse_content_range(header[0] if header else None)
            if admission.endpoint == "put_chunk":
                record = await self._uploads.load(
                    owner, admission.arguments["upload_id"]
                )
                ask = content_range.ask(record.base)
                write = begin_span(self._uploads, record, ask, limit)
            else:
                base = content_range.guess_base()
                write = await create_with_span(
                    self._uploads, owner, "range", content_range.ask(base), limit, base
                )
        end = write.ask.end
        return BodyPlan(
            write.target,
            max_size=None if end is None else end - write.ask.start,
            boundary=boundary,
            context=write,
            on_aborted=lambda written: Deferred.fromCoroutine(write.aborted(written)),
            on_checkpoint=(
                (lambda written: Deferred.fromCoroutine(write.checkpoint(written)))
                if write.checkpoints
                else None
            ),
        )

    async def _chunk_landed(
        self, request: IRequest
    ) -> tuple[UploadRecord, Principal, dict[str, str]]:
        upload = upload_of(request)
        plan, body, digest = await upload.complete()
        write: SpanWrite = plan.context
        fields = dict(body.fields) if isinstance(body, MultipartSink) else {}
        for name in ("filename", "parent", "md5"):
            value = arg(request, name)
            if value and name not in fields:
                fields[name] = value
        if (
            isinstance(body, MultipartSink)
            and body.filename
            and "filename" not in fields
        ):
            fields["filename"] = body.filename
        if isinstance(body, MultipartSink) and body.content_type:
            fields.setdefault("content_type", body.content_type)

        metadata = {
            k: v
            for k, v in fields.items()
            if k in ("filename", "parent", "content_type", "renditions")
        }
        landing = write.land(digest, metadata)
        record = await shield(Deferred.fromCoroutine(landing))
        self._gate.stored(upload)
        return record, upload.principal, fields

    @app.route("/storage/tmp-upload/", methods=["PUT"], endpoint="put_first")
    async def put_first(self, request: IRequest) -> bytes:
        record, _, _ = await self._chunk_landed(request)
        return json_body(request, 200, await self._document(request, record))

    @app.route(
        "/storage/tmp-upload/<upload_id>/", methods=["PUT"], endpoint="put_chunk"
    )
    async def put_chunk(self, request: IRequest, upload_id: str) -> bytes:
        record, _, _ = await self._chunk_landed(request)
        return json_body(request, 200, await self._document(request, record))

    @app.route("/storage/tmp-upload/", methods=["POST"], endpoint="post_whole")
    async def post_whole(self, request: IRequest) -> bytes:
        record, owner, fields = await self._chunk_landed(request)
        # The client never learns this upload's id unless it completes.
        record, _ = await self._complete(owner, record, fields.get("md5"), True)
        return json_body(request, 200, await self._document(request, record))

    # -- completion ------------------------------------------------------------

    @app.route("/storage/tmp-upload/<upload_id>/", methods=["POST"])
    async def complete(self, request: IRequest, upload_id: str) -> bytes:
        owner = principal_of(self._tokens, request, Action.CREATE)
        fields = read_fields(request)
        md5 = str(fields.get("md5") or arg(request, "md5") or "") or None
        record = await self._uploads.load(owner, upload_id)
        record, _ = await self._complete(owner, record, md5)
        return json_body(request, 200, await self._document(request, record))

    async def _complete(
        self,
        owner: Principal,
        record: UploadRecord,
        md5: str | None,
        created: bool = False,
    ) -> tuple[UploadRecord, FileRecord | None]:
        ending = complete(self._uploads, owner, record, md5, created)
        return await shield(Deferred.fromCoroutine(ending))

    async def _document(
        self, request: IRequest, record: UploadRecord
    ) -> dict[str, Any]:
        base = base_url(request, self._public_url)
        complete = record.state == "complete"
        document: dict[str, Any] = {
            "id": record.id,
            "url": f"{base}/storage/tmp-upload/{record.id}/",
            "file": None,
            "filename": record.metadata.get("filename"),
            "offset": covered_prefix(record.ranges),
            "length": record.length,
            "ranges": [[a, b - 1] for a, b in record.ranges],
            "created_at": timestamp(record.created_at),
            "status": COMPLETE if complete else UPLOADING,
            "completed_at": None,
            "expires": None if complete else timestamp(record.expires_at or 0),
            "user": record.owner_id,
            "parent": record.metadata.get("parent"),
        }
        if complete and record.file_id:
            stored = await self._store.get_file(record.file_id)
            if stored is not None:
                document.update(
                    completed_at=timestamp(stored.created_at),
                    filename=stored.filename,
                    sha256=stored.sha256,
                    md5=stored.md5,
                    size=stored.size,
                    download_url=f"{base}/storage/download/{stored.id}/",
                )
        return document

    # -- reading ---------------------------------------------------------------

    @app.route("/storage/files/", methods=["GET"])
    async def files(self, request: IRequest) -> bytes:
        principal = principal_of(self._tokens, request, Action.LIST)
        pages = paging(request, self._page_size)
        found = await self._store.list_files(
            principal.user_id, pages.offset, pages.size
        )
        base = base_url(request, self._public_url)

        async def entry(stored: FileRecord) -> dict[str, Any]:
            versions = await self._store.versions_of(stored.id)
            return {
                "id": stored.id,
                "filename": stored.filename,
                "created_at": timestamp(stored.created_at),
                "download_url": f"{base}/storage/download/{stored.id}/",
                "versions": [
                    {
                        "id": v.id,
                        "filename": v.filename,
                        "created_at": timestamp(v.created_at),
                        "download_url": f"{base}/storage/download/{v.id}/",
                    }
                    for v in versions
                ],
            }

        results = [await entry(stored) for stored in found.results]
        return json_body(
            request, 200, pages.document(f"{base}/storage/files/", found.count, results)
        )

    @app.route("/storage/download/<file_id>/", methods=["GET"])
    async def download(self, request: IRequest, file_id: str) -> IResource | bytes:
        principal = principal_of(self._tokens, request, Action.READ)
        stored = await self._store.get_file(file_id)
        if stored is None or owned(principal, stored.owner_id, "file"):
            raise problems.not_found(f"no such file: {file_id}")
        return await serve(request, self._locator, self._blobs.path(stored.id), stored)
