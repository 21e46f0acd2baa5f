"""``/uploads/``: the tus 1.0.0 resumable upload protocol with every extension.

Core (HEAD, PATCH), creation, creation-with-upload, creation-defer-length,
expiration, checksum (sha1, md5, sha256), termination and concatenation.
Two PATCHes on one upload never interleave: the second is answered 423
Locked while the first runs (HEAD shows how far the first got).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import attrs
from klein import Klein
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.http import datetimeToString
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest

from noded.threads import Runner
from uploadd.api import problems
from uploadd.api.access import principal_of
from uploadd.api.gate import Admission, BodyPlan, IngestGate, upload_of
from uploadd.api.http import base_url, empty
from uploadd.api.problems import Problem, bad_request
from uploadd.auth.tokens import Action, Principal, TokenIssuer
from uploadd.deferreds import shield
from uploadd.ingest.sink import BlobFile, Digest
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import UploadRecord
from uploadd.uploads.resumable import Lock, Resumable

VERSION = "1.0.0"
EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,expiration,"
    "checksum,termination,concatenation"
)
CHECKSUMS = ("sha1", "md5", "sha256")
OFFSET_TYPE = b"application/offset+octet-stream"
_METADATA_PAIR = re.compile(r"^([^\x00-\x20\x7f,]+)(?: ([A-Za-z0-9+/=]*))?$")
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


def parse_metadata(text: str | None) -> dict[str, str]:
    """Upload-Metadata: ``key base64,key2 base64,key3`` -> {key: value}.

    Every pair has a key (no spaces, commas or control characters, unique)
    and optionally one space and a value in canonical base64; spaces around
    the commas are allowed, an empty pair is not.
    """
    found: dict[str, str] = {}
    if not text:
        return found
    for pair in text.split(","):
        match = _METADATA_PAIR.match(pair.strip(" \t"))
        if match is None:
            raise bad_request(
                "Upload-Metadata is not 'key base64value,...' (keys non-empty, "
                "one space before each value)"
            )
        key, encoded = match.group(1), match.group(2) or ""
        if key in found:
            raise bad_request(f"Upload-Metadata names {key!r} twice")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raw = None
        if raw is None or base64.b64encode(raw).decode("ascii") != encoded:
            raise bad_request(f"Upload-Metadata value of {key!r} is not base64")
        found[key] = raw.decode("utf-8", "surrogateescape")
    return found


def encode_metadata(metadata: dict[str, str]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode('utf-8', 'surrogateescape')).decode()}"
        if value
        else key
        for key, value in metadata.items()
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


def parse_checksum(text: str | None) -> tuple[Any, bytes] | None:
    """Upload-Checksum: ``algorithm base64`` -> (hasher, expected digest)."""
    if text is None:
        return None
    algorithm, _, encoded = text.partition(" ")
    if algorithm not in CHECKSUMS:
        raise bad_request(
            f"unsupported checksum algorithm {algorithm!r}; use one of "
            + ", ".join(CHECKSUMS)
        )
    try:
        expected = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise bad_request("Upload-Checksum is not 'algorithm base64digest'") from None
    return hashlib.new(algorithm, usedforsecurity=False), expected


def upload_id_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


@attrs.define
class Append:
    """The state of one PATCH (or creation-with-upload) while its body streams."""

    record: UploadRecord | None
    lock: Lock | None
    target: BlobFile
    checksum: bytes | None
    created: bool = False
    final_parts: tuple[str, ...] = ()


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
        self._tus_headers(request)
        request.setHeader(b"tus-version", VERSION.encode())
        request.setHeader(b"tus-extension", EXTENSIONS.encode())
        request.setHeader(b"tus-max-size", b"%d" % self._gate.limits.max_upload_size)
        request.setHeader(b"tus-checksum-algorithm", ",".join(CHECKSUMS).encode())
        return empty(request, 204)

    # -- bodies ----------------------------------------------------------------

    async def plan_body(self, admission: Admission) -> BodyPlan:
        headers = admission.headers
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
            for part in urls:
                await self._uploads.load(owner, upload_id_of(part))
            # A final upload takes no body; its (empty) plan only makes the
            # gate refuse one.
            staging = BlobFile(self._blobs.staging_path(uuid.uuid4().hex), fsync=False)
            parts = tuple(upload_id_of(u) for u in urls)
            return BodyPlan(
                staging,
                max_size=0,
                context=Append(None, None, staging, None, final_parts=parts),
            )
        if concat not in (None, "partial"):
            raise bad_request("Upload-Concat is 'partial' or 'final;URL URL...'")
        if length is None and deferred != "1":
            raise bad_request("send Upload-Length, or Upload-Defer-Length: 1")
        if length is not None and deferred is not None:
            raise bad_request("send Upload-Length or Upload-Defer-Length, not both")
        if length is not None and length > limit:
            raise problems.too_large(limit)
        checksum = parse_checksum(header(headers, "Upload-Checksum"))
        if has_body:
            self._check_offset_type(headers)
        record = await self._uploads.create(
            owner, "tus", length, metadata, concat=concat
        )
        lock = self._uploads.lock(record.id)
        target = self._uploads.append_target(record, checksum[0] if checksum else None)
        append = Append(record, lock, target, checksum[1] if checksum else None, True)
        return BodyPlan(
            target,
            max_size=length if length is not None else limit,
            context=append,
            on_aborted=self._aborted(append),
        )

    async def _plan_patch(self, admission: Admission) -> BodyPlan:
        headers, owner = admission.headers, admission.principal
        self._check_offset_type(headers)
        record = await self._uploads.load(owner, admission.arguments["upload_id"])
        if record.concat == "final":
            raise problems.forbidden("a final (concatenated) upload takes no PATCH")
        offset = parse_size(header(headers, "Upload-Offset"), "Upload-Offset")
        if offset is None:
            raise bad_request("PATCH needs an Upload-Offset header")
        new_length = parse_size(header(headers, "Upload-Length"), "Upload-Length")
        checksum = parse_checksum(header(headers, "Upload-Checksum"))
        lock = self._uploads.lock(record.id)
        try:
            if offset != record.received:
                raise Problem(
                    409,
                    f"Upload-Offset {offset} is not the upload's offset "
                    f"{record.received}; HEAD it and resume from there",
                    headers={"Upload-Offset": str(record.received)},
                    extra={"offset": record.received},
                )
            if new_length is not None:
                if record.length is not None and new_length != record.length:
                    raise bad_request("Upload-Length is already set")
                if (
                    new_length < record.received
                    or new_length > admission.max_upload_size
                ):
                    raise problems.too_large(admission.max_upload_size)
                record = attrs.evolve(record, length=new_length)
            room = (
                record.length - record.received
                if record.length is not None
                else admission.max_upload_size - record.received
            )
            if admission.length is not None and admission.length > room:
                raise Problem(
                    413,
                    f"the chunk of {admission.length} bytes runs past the upload's "
                    f"length; {room} bytes remain",
                )
            target = self._uploads.append_target(
                record, checksum[0] if checksum else None
            )
        except BaseException:
            lock.release()
            raise
        append = Append(record, lock, target, checksum[1] if checksum else None)
        return BodyPlan(
            target,
            max_size=room,
            context=append,
            on_aborted=self._aborted(append),
            # A body under a checksum is only good once all of it is checked.
            on_checkpoint=None if checksum else self._checkpoint(record),
        )

    def _checkpoint(self, record: UploadRecord) -> Callable[[int], Deferred[None]]:
        """Record the offset a long PATCH has made durable so far."""
        return lambda written: Deferred.fromCoroutine(
            self._uploads.checkpoint(record, written)
        )

    @staticmethod
    def _check_offset_type(headers: Headers) -> None:
        ctype = headers.getRawHeaders(b"content-type")
        if not ctype or ctype[0].split(b";")[0].strip().lower() != OFFSET_TYPE:
            raise Problem(
                415, "a tus body is Content-Type: application/offset+octet-stream"
            )

    def _aborted(self, append: Append) -> Any:
        """Keep what an interrupted body wrote (unless it had a checksum, which
        cannot be checked now, or it created the upload and the client never
        learnt where it is), then let the next PATCH in."""

        def aborted(written: int) -> Deferred[None]:
            async def record() -> None:
                assert append.record is not None and append.lock is not None
                try:
                    if append.created:
                        await self._uploads.terminate(append.record)
                    elif append.checksum is None:
                        append.record = await self._uploads.interrupted(
                            append.record, written
                        )
                    else:
                        await self._uploads.rewind(append.record)
                finally:
                    append.lock.release()

            return Deferred.fromCoroutine(record()).addErrback(
                lambda f: log.failure("recording an interrupted body failed", f)
            )

        return aborted

    @app.route("/uploads/", methods=["POST"], endpoint="create")
    async def create(self, request: IRequest) -> bytes:
        upload = upload_of(request)
        plan, _, digest = await upload.complete()
        append: Append = plan.context
        if append.final_parts:
            await self._run(append.target.path.unlink, True)
            record, stored = await shield(
                Deferred.fromCoroutine(
                    self._uploads.assemble(
                        upload.principal,
                        append.final_parts,
                        parse_metadata(
                            header(request.requestHeaders, "Upload-Metadata")
                        ),
                    )
                )
            )
        else:
            try:
                record, stored = await shield(
                    Deferred.fromCoroutine(
                        self._landed(upload.principal, append, digest)
                    )
                )
            except Exception:
                # The client is not told where the upload is: nobody resumes it.
                assert append.record is not None
                await self._uploads.terminate(append.record)
                raise
        self._gate.stored(upload, stored.id if stored else None)
        self._tus_headers(request, record)
        location = f"{base_url(request, self._public_url)}/uploads/{record.id}"
        request.setHeader(b"location", location.encode("ascii"))
        if digest.size or record.concat != "final":
            request.setHeader(b"upload-offset", b"%d" % record.received)
        return empty(request, 201)

    @app.route("/uploads/<upload_id>", methods=["PATCH"], endpoint="patch")
    async def patch(self, request: IRequest, upload_id: str) -> bytes:
        upload = upload_of(request)
        plan, _, digest = await upload.complete()
        append: Append = plan.context
        record, stored = await shield(
            Deferred.fromCoroutine(self._landed(upload.principal, append, digest))
        )
        self._gate.stored(upload, stored.id if stored else None)
        self._tus_headers(request, record)
        request.setHeader(b"upload-offset", b"%d" % record.received)
        return empty(request, 204)

    async def _landed(
        self, owner: Principal, append: Append, digest: Digest
    ) -> tuple[UploadRecord, Any]:
        """A body is durable: check its checksum, advance, finish if complete."""
        assert append.record is not None and append.lock is not None
        try:
            record = append.record
            if append.checksum is not None and digest.check != append.checksum:
                await self._uploads.rewind(record)
                raise Problem(
                    460,
                    "the body does not match its Upload-Checksum; it was discarded",
                    title="Checksum Mismatch",
                )
            record = await self._uploads.appended(record, append.target, digest)
            if record.length is not None and record.received == record.length:
                whole = await self._uploads.digest(record, record.length)
                return await self._uploads.finish(owner, record, whole)
            return record, None
        finally:
            append.lock.release()

    # -- state -----------------------------------------------------------------

    @app.route("/uploads/<upload_id>", methods=["HEAD"])
    async def head(self, request: IRequest, upload_id: str) -> bytes:
        owner = self._principal(request, Action.CREATE)
        record = await self._uploads.load(owner, upload_id)
        self._tus_headers(request, record)
        request.setHeader(b"upload-offset", b"%d" % record.received)
        if record.length is None:
            request.setHeader(b"upload-defer-length", b"1")
        else:
            request.setHeader(b"upload-length", b"%d" % record.length)
        if record.metadata:
            request.setHeader(
                b"upload-metadata", encode_metadata(record.metadata).encode()
            )
        if record.concat == "partial":
            request.setHeader(b"upload-concat", b"partial")
        elif record.concat == "final":
            base = base_url(request, self._public_url)
            parts = " ".join(f"{base}/uploads/{part}" for part in record.parts)
            request.setHeader(b"upload-concat", f"final;{parts}".encode())
        return empty(request, 200)

    @app.route("/uploads/<upload_id>", methods=["DELETE"])
    async def terminate(self, request: IRequest, upload_id: str) -> bytes:
        owner = self._principal(request, Action.CREATE)
        record = await self._uploads.load(owner, upload_id)
        lock = self._uploads.lock(record.id)
        try:
            await self._uploads.terminate(record)
        finally:
            lock.release()
        self._tus_headers(request)
        return empty(request, 204)
