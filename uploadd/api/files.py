"""``/files``: upload (raw PUT or multipart POST), list (a page at a time,
searched by name, sorted by name, size or date), show, download, delete.

A raw PUT may vouch for its body with ``Content-Digest`` and ``Repr-Digest``
(the same bytes: the body is the whole file); one that does not match is
not stored and its staging bytes go. A multipart POST's fields would vouch
for the whole form, not the file, and are not checked. Either answers the
stored file's ``Repr-Digest`` when asked (``uploadd/api/digests.py``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import attrs
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from noded.download import BlobResource
from noded.threads import Runner
from uploadd.api import digests, problems
from uploadd.api.access import owned, principal_of, query_value
from uploadd.api.gate import Admission, BodyPlan, DecodedBody, IngestGate, upload_of
from uploadd.api.http import arg, base_url, empty, json_body, paging, timestamp
from uploadd.api.problems import Problem
from uploadd.api.renditions import renditions_summary
from uploadd.api.rufh import DraftUploads, interop_of, speaks
from uploadd.auth.tokens import Action, TokenIssuer
from uploadd.cluster.locator import Locator
from uploadd.deferreds import shield
from uploadd.errors import ChecksumMismatch
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.ingest.multipart import MultipartSink, boundary_of
from uploadd.ingest.sink import UploadSink
from uploadd.library import Library
from uploadd.renditions import parse_requested
from uploadd.shares import ShareLinks
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import FILE_ORDERS, FileRecord, IMetadataStore
from uploadd.uploads.checks import BodyCheck, ReprCheck

#: The longest name search ``GET /files?q=`` takes.
MAX_SEARCH = 200


async def serve(
    request: IRequest, locator: Locator, local: Path, record: FileRecord
) -> IResource | bytes:
    """A redirect to the nearest node holding ``record``, or the bytes from
    uploadd's own copy while no node has one."""
    url = await locator.redirect(record, request.getClientAddress().host, local)
    if url is None:
        return BlobResource(
            local,
            record.filename,
            record.content_type,
            record.sha256,
            record.created_at,
        )
    request.setHeader(b"cache-control", b"no-store")
    request.redirect(url.encode("ascii"))
    return empty(request, 302)


@attrs.frozen
class Staged:
    """A body on its way to becoming a file: its staging blob, and the
    checks its request vouched for it with."""

    blob_id: str
    check: BodyCheck | None = None
    whole: ReprCheck | None = None

    async def verify(self, digest: Digest, target: BlobFile, run: Runner) -> None:
        """ChecksumMismatch, the staging bytes removed, unless the body is
        the one vouched for."""
        try:
            if self.check is not None:
                self.check.verify(digest)
            if self.whole is not None:
                await self.whole.verify(digest.sha256, target.path, run)
        except ChecksumMismatch:
            await run(target.path.unlink, True)
            raise


@attrs.define(slots=False)
class FilesAPI:
    app = Klein()
    problems.install(app)
    UPLOAD_ROUTES: ClassVar[dict[str, str]] = {
        "put_file": "put",
        "post_file": "multipart",
    }

    _library: Library
    _store: IMetadataStore
    _blobs: BlobStore
    _run: Runner
    _tokens: TokenIssuer
    _gate: IngestGate
    _locator: Locator
    _fsync: bool = True
    _public_url: str = ""
    _page_size: int = 50
    _links: ShareLinks | None = None
    #: The IETF resumable-upload draft, for a PUT that asks to be resumable.
    _draft: DraftUploads | None = None
    #: Every file's md5 too ([storage] digests).
    _md5: bool = False

    # -- uploads -------------------------------------------------------------

    def word_refusal(self, headers: Headers, problem: Problem) -> Problem:
        """A refusal the gate makes before planning: in the draft's terms
        for a PUT asking to be resumable."""
        if self._draft is not None and speaks(headers):
            return self._draft.word(headers, problem)
        return problem

    async def plan_body(self, admission: Admission) -> BodyPlan:
        """A new staging file; a multipart form for POST /files; for a PUT,
        the checks of its integrity fields (a malformed one refuses the
        body before it is read). A PUT carrying ``Upload-Complete`` becomes
        a resumable upload of the IETF draft (one whose version this server
        does not speak stays an ordinary PUT)."""
        headers = admission.headers
        if (
            admission.endpoint == "put_file"
            and self._draft is not None
            and speaks(headers)
            and interop_of(headers) is not None
        ):
            name = admission.arguments["filename"]
            return await self._draft.plan_body(admission, name=name)
        boundary = None
        staged = Staged(uuid.uuid4().hex)
        if admission.endpoint == "post_file":
            ctype = admission.headers.getRawHeaders(b"content-type")
            boundary = boundary_of(ctype[0] if ctype else None)
        else:
            check = digests.content_check(admission.headers)
            staged = attrs.evolve(
                staged, check=check, whole=digests.repr_check(admission.headers)
            )
        requested = query_value(admission.target, "renditions")
        if requested is not None:
            parse_requested(requested)  # refused before the body is read
        target = BlobFile(
            self._blobs.staging_path(staged.blob_id),
            self._fsync,
            check=staged.check.hasher if staged.check is not None else None,
            md5=self._md5,
        )
        return BodyPlan(target, boundary=boundary, context=staged)

    @app.route("/files/<path:filename>", methods=["OPTIONS"])
    def discover(self, request: IRequest, filename: str) -> bytes:
        """A PUT here can make a resumable upload (the IETF draft): its
        limits, as the draft asks of a resource that creates uploads."""
        if self._draft is not None:
            self._draft.options(request)
        request.setHeader(b"allow", b"GET, HEAD, PUT, DELETE, OPTIONS")
        return empty(request, 204)

    @app.route("/files/<path:filename>", methods=["PUT"], endpoint="put_file")
    async def put_file(self, request: IRequest, filename: str) -> bytes:
        completed = await upload_of(request).complete()
        plan, _, digest = completed
        if self._draft is not None and self._draft.planned(plan):
            return await self._draft.finish(request, plan, digest)
        ctype = request.getHeader(b"content-type")
        return await self._finish(
            request,
            filename=filename,
            content_type=ctype.decode("latin-1") if ctype else None,
            parent=arg(request, "parent"),
            completed=completed,
        )

    @app.route("/files", methods=["POST"], endpoint="post_file")
    async def post_file(self, request: IRequest) -> bytes:
        return await self._finish(
            request, filename=None, content_type=None, parent=arg(request, "parent")
        )

    async def _finish(
        self,
        request: IRequest,
        filename: str | None,
        content_type: str | None,
        parent: str | None,
        completed: tuple[BodyPlan, UploadSink | MultipartSink | DecodedBody, Any]
        | None = None,
    ) -> bytes:
        """Store the body as a file (``completed``: the body, awaited already)."""
        upload = upload_of(request)
        plan, body, digest = completed or await upload.complete()
        staged: Staged = plan.context
        await staged.verify(digest, plan.target, self._run)
        renditions = arg(request, "renditions")
        if isinstance(body, MultipartSink):
            filename = body.fields.get("filename") or body.filename or ""
            content_type = body.content_type
            parent = body.fields.get("parent") or parent
            renditions = body.fields.get("renditions", renditions)
        record = await shield(
            Deferred.fromCoroutine(
                self._library.store(
                    upload.principal,
                    staged.blob_id,
                    digest,
                    filename or "",
                    content_type,
                    parent,
                    renditions=renditions,
                )
            )
        )
        self._gate.stored(upload, record.id)
        base = base_url(request, self._public_url)
        request.setHeader(b"location", f"{base}/files/{record.id}".encode("ascii"))
        if digests.wants_repr_digest(request.requestHeaders):
            # Of the stored file, what the client sent, though the 201's
            # body describes it (RFC 9530 section 3.1 would give the digest
            # of that body): what a client asking on an upload wants to
            # compare, as the resumable upload draft answers it too.
            request.setHeader(b"repr-digest", digests.repr_digest_field(record.sha256))
        return json_body(request, 201, await self.document(base, record))

    # -- reading -------------------------------------------------------------

    @app.route("/files", methods=["GET"])
    async def list_files(self, request: IRequest) -> bytes:
        principal = principal_of(self._tokens, request, Action.LIST)
        pages = paging(request, self._page_size)
        everyone = arg(request, "all")
        owner = None if principal.is_admin and everyone else principal.user_id
        search, order = arg(request, "q") or "", arg(request, "sort") or "-created"
        if order not in FILE_ORDERS:
            raise problems.bad_request(
                f"sort is one of {', '.join(FILE_ORDERS)}", sort=order[:40]
            )
        if len(search) > MAX_SEARCH:
            raise problems.bad_request(f"q is at most {MAX_SEARCH} characters")
        found = await self._store.list_files(
            owner, pages.offset, pages.size, search, order
        )
        base = base_url(request, self._public_url)
        results = [await self.document(base, r) for r in found.results]
        keep = {"q": search, "sort": arg(request, "sort"), "all": everyone}
        return json_body(
            request, 200, pages.document(f"{base}/files", found.count, results, keep)
        )

    @app.route("/files/<file_id>", methods=["GET"])
    async def show_file(self, request: IRequest, file_id: str) -> bytes:
        record = await self._readable(request, file_id, Action.READ)
        base = base_url(request, self._public_url)
        return json_body(request, 200, await self.document(base, record))

    @app.route("/files/<file_id>/content", methods=["GET"])
    async def file_content(self, request: IRequest, file_id: str) -> IResource | bytes:
        share = arg(request, "share")
        if share is not None:
            # A share link fetches the slides of the deck it names, no more.
            found = await self._store.get_file(file_id)
            if found is None or self._links is None:
                raise problems.not_found(f"no such file: {file_id}")
            if await self._links.check_slide(share, found) is None:
                raise problems.not_found(f"no such file: {file_id}")
            record = found
        elif arg(request, "sig") is None:
            record = await self._readable(request, file_id, Action.READ)
        else:
            # A signed URL (as handed to a transcode worker) needs no token.
            found = await self._store.get_file(file_id)
            if found is None:
                raise problems.not_found(f"no such file: {file_id}")
            signed = {k: arg(request, k) for k in ("expires", "name", "type", "sig")}
            self._locator.check(found, {k: v for k, v in signed.items() if v})
            record = found
        return await serve(request, self._locator, self._blobs.path(record.id), record)

    @app.route("/files/<file_id>", methods=["DELETE"])
    async def delete_file(self, request: IRequest, file_id: str) -> bytes:
        record = await self._readable(request, file_id, Action.DELETE)
        await self._library.delete(record)
        return empty(request, 204)

    async def _readable(
        self, request: IRequest, file_id: str, action: Action
    ) -> FileRecord:
        principal = principal_of(self._tokens, request, action)
        record = await self._store.get_file(file_id)
        if record is None or owned(principal, record.owner_id, "file"):
            raise problems.not_found(f"no such file: {file_id}")
        return record

    async def document(self, base: str, record: FileRecord) -> dict[str, Any]:
        versions = await self._store.versions_of(record.id)
        replicas = await self._store.replicas_of(record.id)
        return {
            "id": record.id,
            "filename": record.filename,
            "size": record.size,
            "sha256": record.sha256,
            "md5": record.md5 or None,
            "content_type": record.content_type,
            "created_at": timestamp(record.created_at),
            "parent": record.parent,
            "versions": [
                {
                    "id": v.id,
                    "filename": v.filename,
                    "size": v.size,
                    "created_at": timestamp(v.created_at),
                    "url": f"{base}/files/{v.id}",
                }
                for v in versions
            ],
            # Only copies a download can reach now (see Locator.reachable).
            "replicas": [node.id for node in self._locator.reachable(replicas)],
            "url": f"{base}/files/{record.id}",
            "download_url": f"{base}/files/{quote(record.id)}/content",
            "rendition_of": record.rendition_of,
            **await renditions_summary(self._store, base, record.id),
        }
