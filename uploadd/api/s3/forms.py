"""POST Object: a browser's upload of one file with an HTML form whose
signed policy says what it may carry (:mod:`.policy`).

The form streams as any multipart form does here
(:class:`~uploadd.ingest.multipart.MultipartSink`): the fields come first,
the file part into a staging file. When the file part begins (or the form
ends without one), the fields before it are all there is to judge, as S3
judges them: the policy is verified then, alongside the bytes arriving,
and a form it does not allow is refused at once, its bytes removed, before
more of the file is read than the verification took. The policy's
``content-length-range`` bounds the file as it streams and when it ends.

The answer is S3's: ``204`` by default, ``200`` or ``201`` (with a
``PostResponse`` document) as ``success_action_status`` asks, or a ``303``
to ``success_action_redirect`` with the bucket, key and entity tag.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from uploadd.api.gate import BodyPlan, IngestGate, upload_of
from uploadd.api.http import base_url, empty
from uploadd.api.s3.access import Signatures
from uploadd.api.s3.bodies import meta_of
from uploadd.api.s3.buckets_ops import xml_answer
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.faults import s3_problem
from uploadd.api.s3.policy import PostPolicy
from uploadd.api.s3.xml import document, quoted
from uploadd.auth.tokens import Principal
from uploadd.buckets import Buckets, ObjectInfo
from uploadd.deferreds import shield
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.ingest.multipart import MultipartSink, boundary_of
from uploadd.ingest.sink import StreamedContent, UploadSink
from uploadd.store.blobs import BlobStore


@attrs.frozen
class Allowed:
    """A form whose policy holds: who signed it and what it allows."""

    principal: Principal
    policy: PostPolicy


Judge = Callable[[dict[str, str], str | None], Coroutine[Any, Any, Allowed]]


class _FileSide:
    """What the form parser writes the file part to: the form, which holds
    it until the policy is judged."""

    def __init__(self, form: PostForm) -> None:
        self._form = form

    def write(self, data: bytes) -> None:
        self._form.file_data(data)

    def complete(self) -> Deferred[Digest]:
        return Deferred.fromCoroutine(self._form.file_ended())

    def abort(self) -> None:
        self._form.sink.abort()


@attrs.define(eq=False)
class PostForm(StreamedContent):
    """``request.content`` of a POST Object form (a gate ``DecodedBody``)."""

    sink: UploadSink
    boundary: bytes
    _judge: Judge
    _reject: Callable[[Any], None]

    received: int = 0
    allowed: Allowed | None = None
    parser: MultipartSink = attrs.field(init=False)
    _judging: Deferred[None] | None = None
    _refused: BaseException | None = None
    _completing: bool = False

    def __attrs_post_init__(self) -> None:
        side: Any = _FileSide(self)
        self.parser = MultipartSink(side, self.boundary, on_reject=self._invalid)

    # -- as Twisted and the gate see it ---------------------------------------

    def write(self, data: bytes) -> None:
        self.received += len(data)
        self.parser.write(data)

    def complete(self) -> Deferred[Digest]:
        self._completing = True
        return self.parser.complete()

    def abort(self) -> None:
        self.sink.abort()

    # -- the file part ------------------------------------------------------------

    def file_data(self, data: bytes) -> None:
        if self._judging is None:
            self._start()
        if self._refused is not None:
            return
        self._bound(self.sink.received + len(data))
        if self._refused is None:
            self.sink.write(data)

    async def file_ended(self) -> Digest:
        if self._judging is None:
            self._start()
        assert self._judging is not None
        await self._judging
        if self._refused is not None:
            raise self._refused
        allowed = self.allowed
        assert allowed is not None
        size = self.sink.received
        bounds = allowed.policy.content_length_range
        if bounds is not None and size < bounds[0]:
            self.sink.abort()
            raise S3Error(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
                ProposedSize=str(size),
                MinSizeAllowed=str(bounds[0]),
            )
        digest: Digest = await self.sink.complete()
        return digest

    def _start(self) -> None:
        judging: Deferred[Allowed] = Deferred.fromCoroutine(
            self._judge(dict(self.parser.fields), self.parser.filename)
        )
        self._judging = judging.addCallbacks(self._judged, self._failed)

    def _judged(self, allowed: Allowed) -> None:
        self.allowed = allowed
        self._bound(self.sink.received)

    def _bound(self, size: int) -> None:
        bounds = self.allowed.policy.content_length_range if self.allowed else None
        if bounds is not None and size > bounds[1]:
            self._refuse(
                S3Error(
                    "EntityTooLarge",
                    "Your proposed upload exceeds the maximum allowed size",
                    ProposedSize=str(size),
                    MaxSizeAllowed=str(bounds[1]),
                )
            )

    def _failed(self, failure: Failure) -> None:
        self._refuse(failure.value or Exception("the policy check failed"))

    def _refuse(self, error: BaseException) -> None:
        if self._refused is not None:
            return
        self._refused = error
        self.sink.abort()
        if not self._completing:
            self._reject(s3_problem(error))

    def _invalid(self, error: Any) -> None:
        self._reject(s3_problem(error))


@attrs.frozen
class FormOps:
    _buckets: Buckets
    _blobs: BlobStore
    _signatures: Signatures
    _gate: IngestGate
    _fsync: bool
    _public_url: str = ""

    def plan(self, bucket: str, content_type: bytes | None) -> BodyPlan:
        """A form's body into a new staging file, its policy judged when
        the file part begins."""
        try:
            boundary = boundary_of(content_type)
        except Exception:
            raise S3Error(
                "MalformedPOSTRequest",
                "The body of your POST request is not well-formed multipart/form-data.",
            ) from None
        blob_id = uuid.uuid4().hex
        target = BlobFile(self._blobs.staging_path(blob_id), self._fsync, md5=True)

        async def judge(fields: dict[str, str], filename: str | None) -> Allowed:
            principal, policy = await self._signatures.policy(fields, bucket, filename)
            await self._buckets.writable(principal, bucket, policy.key)
            return Allowed(principal, policy)

        def wrap(sink: UploadSink, reject: Callable[[Any], None]) -> PostForm:
            return PostForm(sink, boundary, judge, reject)

        return BodyPlan(target, context=blob_id, wrap=wrap)

    async def finish(
        self, request: IRequest, plan: BodyPlan, form: Any, digest: Digest
    ) -> bytes:
        assert isinstance(form, PostForm) and form.allowed is not None
        allowed = form.allowed
        fields = {
            name.lower(): value.encode("utf-8").decode("latin-1")
            for name, value in form.parser.fields.items()
        }
        if "content-type" not in fields and form.parser.content_type:
            fields["content-type"] = form.parser.content_type
        try:
            meta = meta_of(fields)
        except BaseException:
            # The file part is staged already; a refused form keeps nothing.
            await self._buckets.discard(plan.context)
            raise
        key, bucket = allowed.policy.key, allowed.policy.bucket
        info: ObjectInfo = await shield(
            Deferred.fromCoroutine(
                self._buckets.store_object(
                    allowed.principal, bucket, key, plan.context, digest, meta
                )
            )
        )
        upload = upload_of(request)
        upload.principal = allowed.principal
        self._gate.stored(upload, info.file_id)
        etag = quoted(info.etag)
        request.setHeader(b"etag", etag.encode("ascii"))
        base = base_url(request, self._public_url)
        location = f"{base}/{bucket}/{key}"
        request.setHeader(b"location", location.encode("utf-8"))
        redirect = fields.get("success_action_redirect") or fields.get("redirect")
        if redirect:
            separator = "&" if "?" in redirect else "?"
            query = urlencode({"bucket": bucket, "key": key, "etag": etag})
            request.setHeader(b"location", f"{redirect}{separator}{query}".encode())
            return empty(request, 303)
        status = fields.get("success_action_status", "204")
        if status == "201":
            body = document(
                "PostResponse",
                [
                    ("Location", location),
                    ("Bucket", bucket),
                    ("Key", key),
                    ("ETag", etag),
                ],
                namespace=False,
            )
            return xml_answer(request, 201, body)
        return empty(request, 200 if status == "200" else 204)
