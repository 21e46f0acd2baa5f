"""``/files/{id}/renditions``: what transcodes made of a file, and the routes
transcode workers drive a job through.

Owners read ``GET /files/{id}/renditions`` (also part of ``GET /files/{id}``).
Workers, with a token of scope ``worker``:

- ``POST /files/{id}/renditions/{profile}/start``: a new attempt; answers the
  attempt number and a signed URL for the source (409 when the job is over);
- ``PATCH /files/{id}/renditions/{profile}`` with ``attempt`` and
  ``state`` running + ``percent``, failed + ``error``, or ready + ``outputs``
  (how many were sent);
- ``PUT /files/{id}/renditions/{profile}/{n}?attempt=a&filename=f``: output
  ``n`` (from 0) as a streamed body; sending it again replaces it.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar
from urllib.parse import quote

import attrs
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.web.iweb import IRequest

from noded.threads import Runner
from uploadd.api import problems
from uploadd.api.access import owned, principal_of, query_value
from uploadd.api.gate import Admission, BodyPlan, IngestGate, upload_of
from uploadd.api.http import (
    arg,
    base_url,
    json_body,
    read_fields,
    timestamp,
    whole_number,
)
from uploadd.auth.tokens import Action, TokenIssuer
from uploadd.cluster.locator import Locator
from uploadd.deferreds import shield
from uploadd.ingest.blob import BlobFile
from uploadd.library import Library, OutputSlot
from uploadd.renditions import (
    FAILED,
    PENDING,
    READY,
    RUNNING,
    Renditions,
    document,
)
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import MISSING, IMetadataStore, Rendition


async def outputs_of(
    store: IMetadataStore, base: str, rendition: Rendition
) -> list[dict[str, Any]]:
    """The files a rendition made, in order, with where to fetch them."""
    found = []
    for output_id in rendition.outputs:
        record = await store.get_file(output_id) if output_id != MISSING else None
        if record is not None:
            found.append(
                {
                    "id": record.id,
                    "filename": record.filename,
                    "content_type": record.content_type,
                    "size": record.size,
                    "created_at": timestamp(record.created_at),
                    "url": f"{base}/files/{record.id}",
                    "download_url": f"{base}/files/{quote(record.id)}/content",
                }
            )
    return found


async def renditions_summary(
    store: IMetadataStore, base: str, source_id: str
) -> dict[str, Any]:
    """A file document's ``renditions``, overall ``status`` (PENDING until
    every one is over, then READY or FAILED; None without any) and, for a
    PDF shown as slides, the ``slides`` image URLs in order."""
    renditions = await store.renditions_of(source_id)
    listed = [
        document(r, await outputs_of(store, base, r) if r.state == READY else [])
        for r in renditions
    ]
    states = {r.state for r in renditions}
    status = None
    if states & {PENDING, RUNNING}:
        status = PENDING
    elif states:
        status = FAILED if FAILED in states else READY
    summary: dict[str, Any] = {
        "renditions": listed,
        "status": status.upper() if status else None,
    }
    for rendition, shown in zip(renditions, listed, strict=True):
        if rendition.profile == "pdf-slides":
            summary["slides"] = [o["download_url"] for o in shown["outputs"]]
    return summary


def _attempt(value: Any) -> int:
    return whole_number(value, 1, "attempt is the number start answered")


@attrs.define(slots=False)
class RenditionsAPI:
    app = Klein()
    problems.install(app)
    UPLOAD_ROUTES: ClassVar[dict[str, str]] = {"put_output": "output"}
    UPLOAD_ACTION: ClassVar[Action] = Action.RENDER

    _renditions: Renditions
    _library: Library
    _store: IMetadataStore
    _blobs: BlobStore
    _run: Runner
    _tokens: TokenIssuer
    _gate: IngestGate
    _locator: Locator
    _fsync: bool = True
    _public_url: str = ""
    #: Every file's md5 too ([storage] digests).
    _md5: bool = False

    @app.route("/files/<file_id>/renditions", methods=["GET"])
    async def list_renditions(self, request: IRequest, file_id: str) -> bytes:
        principal = principal_of(self._tokens, request, Action.READ)
        record = await self._store.get_file(file_id)
        if record is None or owned(principal, record.owner_id, "file"):
            raise problems.not_found(f"no such file: {file_id}")
        base = base_url(request, self._public_url)
        return json_body(
            request, 200, await renditions_summary(self._store, base, file_id)
        )

    @app.route("/files/<file_id>/renditions/<profile>/start", methods=["POST"])
    async def start(self, request: IRequest, file_id: str, profile: str) -> bytes:
        principal_of(self._tokens, request, Action.RENDER)
        found = await self._store.get_file(file_id)
        if found is not None:
            # A source this instance cannot hand out yet (another instance
            # received it and is copying it to the nodes) is a 503 before an
            # attempt is spent on it; the worker asks again.
            await self._locator.redirect(found, "", self._blobs.path(found.id))
        source, rendition = await self._renditions.start(file_id, profile)
        base = base_url(request, self._public_url)
        signed = self._locator.sign(source)
        return json_body(
            request,
            200,
            {
                "file_id": source.id,
                "profile": profile,
                "attempt": rendition.attempt,
                "filename": source.filename,
                "content_type": source.content_type,
                "size": source.size,
                "sha256": source.sha256,
                "source_url": f"{base}/files/{quote(source.id)}/content?{signed}",
            },
        )

    @app.route("/files/<file_id>/renditions/<profile>", methods=["PATCH"])
    async def report(self, request: IRequest, file_id: str, profile: str) -> bytes:
        principal_of(self._tokens, request, Action.RENDER)
        fields = read_fields(request)
        attempt = _attempt(fields.get("attempt"))
        state = str(fields.get("state", "")).lower()
        if state == RUNNING:
            percent = fields.get("percent")
            if not isinstance(percent, int | float) or isinstance(percent, bool):
                raise problems.bad_request("percent is a number from 0 to 100")
            rendition = await self._renditions.progress(
                file_id, profile, attempt, float(percent)
            )
        elif state == FAILED:
            error = fields.get("error")
            if not isinstance(error, str):
                raise problems.bad_request("error says what went wrong")
            rendition = await self._renditions.fail(file_id, profile, attempt, error)
        elif state == READY:
            count = fields.get("outputs")
            if not isinstance(count, int) or isinstance(count, bool):
                raise problems.bad_request("outputs is how many outputs were sent")
            rendition, dropped = await self._renditions.finish(
                file_id, profile, attempt, count
            )
            for output_id in dropped:
                await self._run(self._blobs.remove, output_id)
        else:
            raise problems.bad_request("state is running, failed or ready")
        base = base_url(request, self._public_url)
        shown = await outputs_of(self._store, base, rendition)
        return json_body(request, 200, document(rendition, shown))

    # -- outputs -------------------------------------------------------------

    async def plan_body(self, admission: Admission) -> BodyPlan:
        """Refuse an output the job does not want before its body is read."""
        arguments = admission.arguments
        attempt = _attempt(query_value(admission.target, "attempt"))
        source, rendition = await self._renditions.current(
            arguments["file_id"], arguments["profile"], attempt
        )
        blob_id = uuid.uuid4().hex
        slot = OutputSlot(source, rendition.profile, arguments["index"], attempt)
        target = BlobFile(self._blobs.staging_path(blob_id), self._fsync, md5=self._md5)
        return BodyPlan(target, context=(blob_id, slot))

    @app.route(
        "/files/<file_id>/renditions/<profile>/<int:index>",
        methods=["PUT"],
        endpoint="put_output",
    )
    async def put_output(
        self, request: IRequest, file_id: str, profile: str, index: int
    ) -> bytes:
        upload = upload_of(request)
        plan, _, digest = await upload.complete()
        blob_id, slot = plan.context
        ctype = request.getHeader(b"content-type")
        record = await shield(
            Deferred.fromCoroutine(
                self._library.store(
                    upload.principal,
                    blob_id,
                    digest,
                    arg(request, "filename") or f"{profile}-{index}",
                    ctype.decode("latin-1") if ctype else None,
                    None,
                    output=slot,
                )
            )
        )
        self._gate.stored(upload, record.id)
        base = base_url(request, self._public_url)
        return json_body(
            request,
            201,
            {
                "id": record.id,
                "index": index,
                "size": record.size,
                "sha256": record.sha256,
                "url": f"{base}/files/{record.id}",
            },
        )
