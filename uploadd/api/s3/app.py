"""The S3 API: routes of the S3 listener, who is asking, and which S3
operation a request is (by method, path and query, as S3 tells them).

Path-style addressing only: ``/`` (the caller's buckets), ``/<bucket>`` and
``/<bucket>/<key>``. Every request is signed (Signature Version 4 in the
``Authorization`` header or a presigned query; a POST Object form by its
policy); an anonymous one is ``AccessDenied``. Requests with bodies that
may be large or that must be checked before they are stored (PutObject,
UploadPart, POST Object, a completion's or a Delete's document) are planned
by :meth:`S3API.plan_body` when their headers arrive, the signature checked
before a byte of the body is read; the others are read whole (at most
``[http] max_body_size``) and checked by their handler. What a request may
do is its access key's scope, as the core enforces it.

Every failure becomes S3's XML error document in one place (:mod:`.faults`),
every answer carries ``x-amz-request-id``, and a browser's cross-origin
requests are answered as the bucket's CORS rules say (:mod:`.cors`).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import parse_qs

import attrs
from klein import Klein
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from uploadd.api import problems
from uploadd.api.gate import Admission, BodyPlan, upload_of
from uploadd.api.http import empty
from uploadd.api.root import decode_path
from uploadd.api.s3.access import Signatures, read_body
from uploadd.api.s3.bodies import Signed, Staging, copy_source
from uploadd.api.s3.buckets_ops import BucketOps
from uploadd.api.s3.checksums import BodyChecks
from uploadd.api.s3.cors import BucketCors, rules_of
from uploadd.api.s3.errors import S3Error
from uploadd.api.s3.faults import request_id, resource_of, s3_problem
from uploadd.api.s3.forms import FormOps
from uploadd.api.s3.multipart_ops import MultipartDocument, MultipartOps, UploadPart
from uploadd.api.s3.objects_ops import CopyObject, DeleteObjects, ObjectOps, PutObject
from uploadd.auth.tokens import Principal
from uploadd.buckets import Buckets
from uploadd.store.interface import IMetadataStore

#: Subresources of S3 this server keeps nothing of: NotImplemented.
UNSUPPORTED = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "legal-hold",
        "lifecycle",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "restore",
        "retention",
        "select",
        "tagging",
        "torrent",
        "versions",
        "website",
    }
)


def query_of(target: bytes) -> dict[str, str]:
    """A request target's query arguments (the last of each)."""
    query = target.partition(b"?")[2].decode("latin-1")
    return {
        name: values[-1]
        for name, values in parse_qs(query, keep_blank_values=True).items()
    }


def args_of(request: IRequest) -> dict[str, str]:
    return query_of(request.uri)


def _unsupported(query: dict[str, str]) -> None:
    found = UNSUPPORTED & set(query)
    if found:
        raise S3Error(
            "NotImplemented",
            f"The {sorted(found)[0]} subresource is not implemented here",
        )


def _content(request: IRequest) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    data: bytes = content.read()
    return data


_BUCKET = "/<bucket>"
_BUCKET_SLASH = "/<bucket>/"
_KEY = "/<bucket>/<path:key>"


@attrs.define(slots=False)
class S3API:
    """The S3 listener's one resource family."""

    app = Klein()
    # Keys may hold runs of slashes; the path is taken as it is.
    app.url_map.merge_slashes = False
    #: Requests here carry their own credentials (signatures), checked
    #: when their body is planned; the gate checks no bearer token.
    SIGNED: ClassVar[bool] = True
    UPLOAD_ROUTES: ClassVar[dict[str, str]] = {
        "put_key": "s3",
        "post_key": "s3",
        "post_bucket": "s3",
        "post_bucket_slash": "s3",
    }

    _signatures: Signatures
    _store: IMetadataStore
    _buckets: Buckets
    _staging: Staging
    _bucket_ops: BucketOps
    _objects: ObjectOps
    _multipart: MultipartOps
    _forms: FormOps
    _cors: BucketCors

    # -- who, and the answer's frame -------------------------------------------------

    async def _enter(self, request: IRequest, bucket: str | None) -> None:
        """Every request: its id, and the CORS headers its origin is due."""
        request_id(request)
        if bucket is not None and request.getHeader(b"origin"):
            self._cors.decorate(request, await self._rules(bucket))

    async def _rules(self, bucket: str) -> list[dict[str, Any]]:
        found = await self._store.get_bucket(bucket)
        return rules_of(found.cors if found is not None else None)

    async def _caller(self, request: IRequest) -> tuple[Principal, bytes]:
        """Who signed ``request`` and its body, read whole and checked."""
        principal, verified = await self._signatures.verify(
            request.method, request.uri, request.requestHeaders
        )
        body = read_body(_content(request), request.requestHeaders, verified)
        return principal, body

    @app.handle_errors(Exception)
    def _failed(self, request: IRequest, failure: Failure) -> bytes:
        problem = s3_problem(
            failure.value, resource_of(request), request_id(request), failure
        )
        return problems.apply(request, problem)

    # -- bodies planned at their headers ----------------------------------------------

    async def plan_body(self, admission: Admission) -> BodyPlan:
        """Where a body goes, once its request's signature holds; the S3
        problem refusing it otherwise."""
        try:
            return await self._plan(admission)
        except Exception as error:
            raise s3_problem(error, decode_path(admission.target)) from None

    async def _plan(self, admission: Admission) -> BodyPlan:
        query = query_of(admission.target)
        headers = admission.headers
        bucket = admission.arguments["bucket"]
        posted = admission.endpoint in ("post_bucket", "post_bucket_slash")
        if posted and "delete" not in query:
            # A browser's form: signed by its policy, judged in its body.
            ctype = headers.getRawHeaders(b"content-type")
            return self._forms.plan(bucket, ctype[-1] if ctype else None)
        signed = await self._signed(admission)
        if posted:
            await self._buckets.get(signed.principal, bucket, "delete")
            return self._staging.document(signed, DeleteObjects(signed, bucket))
        key = admission.arguments["key"]
        if admission.endpoint == "post_key":
            _unsupported(query)
            if "uploads" in query:
                await self._buckets.writable(signed.principal, bucket, key)
                return self._staging.document(
                    signed, MultipartDocument(signed, bucket, key, None)
                )
            if "uploadId" in query:
                return self._staging.document(
                    signed, MultipartDocument(signed, bucket, key, query["uploadId"])
                )
            raise S3Error(
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            )
        _unsupported(query)
        source = copy_source(headers)
        if "uploadId" in query or "partNumber" in query:
            if source is not None:
                raise S3Error("NotImplemented", "UploadPartCopy is not implemented")
            return await self._multipart.plan_part(
                signed,
                bucket,
                key,
                query.get("uploadId", ""),
                query.get("partNumber"),
                admission.length,
            )
        if source is not None:
            await self._buckets.writable(signed.principal, bucket, key)
            return self._objects.plan_copy(signed, bucket, key, source, headers)
        return await self._objects.plan_put(signed, bucket, key, headers)

    async def _signed(self, admission: Admission) -> Signed:
        principal, verified = await self._signatures.verify(
            admission.method, admission.target, admission.headers
        )
        return Signed(
            principal, verified, BodyChecks.of(admission.headers, verified.payload)
        )

    # -- the service -----------------------------------------------------------------

    @app.route("/", methods=["GET", "HEAD"])
    async def service(self, request: IRequest) -> bytes:
        await self._enter(request, None)
        principal, _ = await self._caller(request)
        return await self._bucket_ops.list_buckets(request, principal)

    # -- buckets -------------------------------------------------------------

    @app.route(_BUCKET, methods=["GET"])
    @app.route(_BUCKET_SLASH, methods=["GET"], endpoint="get_bucket_slash")
    async def get_bucket(self, request: IRequest, bucket: str) -> bytes:
        if request.method == b"HEAD":
            # werkzeug lets a GET route take HEAD too.
            return await self.head_bucket(request, bucket)
        await self._enter(request, bucket)
        principal, _ = await self._caller(request)
        query = args_of(request)
        ops = self._bucket_ops
        if "uploads" in query:
            return await self._multipart.list_uploads(request, principal, bucket)
        if "location" in query:
            return await ops.location(request, principal, bucket)
        if "versioning" in query:
            return await ops.versioning(request, principal, bucket)
        if "cors" in query:
            return await ops.get_cors(request, principal, bucket)
        _unsupported(query)
        if query.get("list-type") == "2":
            return await ops.list_v2(request, principal, bucket)
        return await ops.list_v1(request, principal, bucket)

    @app.route(_BUCKET, methods=["HEAD"])
    @app.route(_BUCKET_SLASH, methods=["HEAD"], endpoint="head_bucket_slash")
    async def head_bucket(self, request: IRequest, bucket: str) -> bytes:
        await self._enter(request, bucket)
        principal, _ = await self._caller(request)
        return await self._bucket_ops.head(request, principal, bucket)

    @app.route(_BUCKET, methods=["PUT"])
    @app.route(_BUCKET_SLASH, methods=["PUT"], endpoint="put_bucket_slash")
    async def put_bucket(self, request: IRequest, bucket: str) -> bytes:
        await self._enter(request, bucket)
        principal, body = await self._caller(request)
        query = args_of(request)
        if "cors" in query:
            return await self._bucket_ops.put_cors(request, principal, bucket, body)
        if "versioning" in query:
            raise S3Error("NotImplemented", "Versioning is not kept here")
        _unsupported(query)
        return await self._bucket_ops.create(request, principal, bucket, body)

    @app.route(_BUCKET, methods=["DELETE"])
    @app.route(_BUCKET_SLASH, methods=["DELETE"], endpoint="delete_bucket_slash")
    async def delete_bucket(self, request: IRequest, bucket: str) -> bytes:
        await self._enter(request, bucket)
        principal, _ = await self._caller(request)
        query = args_of(request)
        if "cors" in query:
            return await self._bucket_ops.delete_cors(request, principal, bucket)
        _unsupported(query)
        return await self._bucket_ops.delete(request, principal, bucket)

    @app.route(_BUCKET, methods=["POST"], endpoint="post_bucket")
    @app.route(_BUCKET_SLASH, methods=["POST"], endpoint="post_bucket_slash")
    async def post_bucket(self, request: IRequest, bucket: str) -> bytes:
        await self._enter(request, bucket)
        plan, body, digest = await upload_of(request).complete()
        if isinstance(plan.context, DeleteObjects):
            return await self._objects.finish_delete_objects(request, plan, digest)
        return await self._forms.finish(request, plan, body, digest)

    # -- objects -------------------------------------------------------------

    @app.route(_KEY, methods=["GET", "HEAD"])
    async def get_key(
        self, request: IRequest, bucket: str, key: str
    ) -> Resource | bytes:
        await self._enter(request, bucket)
        principal, _ = await self._caller(request)
        query = args_of(request)
        if "uploadId" in query and request.method == b"GET":
            return await self._multipart.list_parts(
                request, principal, bucket, key, query["uploadId"]
            )
        _unsupported(query)
        if "partNumber" in query:
            raise S3Error("NotImplemented", "Reading one part is not implemented")
        return await self._objects.read(request, principal, bucket, key)

    @app.route(_KEY, methods=["PUT"], endpoint="put_key")
    async def put_key(self, request: IRequest, bucket: str, key: str) -> bytes:
        await self._enter(request, bucket)
        plan, body, digest = await upload_of(request).complete()
        context = plan.context
        if isinstance(context, UploadPart):
            return await self._multipart.finish_part(request, plan, body, digest)
        if isinstance(context, CopyObject):
            return await self._objects.finish_copy(request, plan)
        assert isinstance(context, PutObject)
        return await self._objects.finish_put(request, plan, body, digest)

    @app.route(_KEY, methods=["POST"], endpoint="post_key")
    async def post_key(self, request: IRequest, bucket: str, key: str) -> bytes:
        await self._enter(request, bucket)
        plan, _, digest = await upload_of(request).complete()
        return await self._multipart.finish_document(request, plan, digest)

    @app.route(_KEY, methods=["DELETE"])
    async def delete_key(self, request: IRequest, bucket: str, key: str) -> bytes:
        await self._enter(request, bucket)
        principal, _ = await self._caller(request)
        query = args_of(request)
        if "uploadId" in query:
            return await self._multipart.abort(
                request, principal, bucket, key, query["uploadId"]
            )
        _unsupported(query)
        return await self._objects.delete(request, principal, bucket, key)

    # -- browsers ------------------------------------------------------------

    @app.route("/", methods=["OPTIONS"])
    @app.route(_BUCKET, methods=["OPTIONS"], endpoint="preflight_bucket")
    @app.route(_BUCKET_SLASH, methods=["OPTIONS"], endpoint="preflight_slash")
    @app.route(_KEY, methods=["OPTIONS"], endpoint="preflight_key")
    async def preflight(
        self, request: IRequest, bucket: str | None = None, key: str | None = None
    ) -> bytes:
        """A CORS preflight, answered by the bucket's rules (no signature:
        browsers send none)."""
        request_id(request)
        self._cors.preflight(request, await self._rules(bucket) if bucket else [])
        return empty(request, 200)
