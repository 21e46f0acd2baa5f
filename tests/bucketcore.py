"""The buckets core in memory for unit tests: a memory store, a Clock,
blobs in a temporary directory, the library, resumable uploads, buckets and
multipart uploads, with the users alice and bob (writers) and root (admin),
and helpers that store objects and send parts as the edge would."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from noded.threads import run_inline
from uploadd.auth.tokens import Principal
from uploadd.buckets import Buckets, ObjectInfo, ObjectMeta
from uploadd.buckets.multipart import Multipart
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.library import Library
from uploadd.store.blobs import BlobStore
from uploadd.store.buckets import PartRecord
from uploadd.store.memory import MemoryStore
from uploadd.uploads.resumable import Resumable

T = TypeVar("T")
ALICE = Principal(1, "alice", frozenset({"write"}))
BOB = Principal(2, "bob", frozenset({"write"}))
ROOT = Principal(3, "root", frozenset({"admin"}))
DAY = 24 * 3600.0


def now(coroutine: Coroutine[Any, Any, T]) -> T:
    """The outcome of a coroutine that completes without waiting (a memory
    store, inline threads): its result, or its error raised here."""
    outcome: list[Any] = []
    Deferred.fromCoroutine(coroutine).addBoth(outcome.append)
    assert outcome, "the coroutine waited on something"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    result: T = outcome[0]
    return result


def written(target: BlobFile, data: bytes) -> Digest:
    """Write ``data`` as one body into ``target`` the way the writer
    threads do, and close it durably."""
    target.write_sha256([data])
    target.update_beside([data])
    return target.close()


@attrs.define
class Core:
    store: MemoryStore
    clock: Clock
    blobs: BlobStore
    library: Library
    uploads: Resumable
    buckets: Buckets
    multipart: Multipart

    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        meta: ObjectMeta | None = None,
        who: Principal = ALICE,
    ) -> ObjectInfo:
        """Store ``data`` as ``key``, as a PutObject body staged by the edge."""
        blob_id = uuid.uuid4().hex
        digest = written(
            BlobFile(self.blobs.staging_path(blob_id), False, md5=True), data
        )
        return now(
            self.buckets.store_object(
                who, bucket, key, blob_id, digest, meta or ObjectMeta()
            )
        )

    def content(self, file_id: str) -> bytes:
        return self.blobs.path(file_id).read_bytes()

    def send_part(
        self,
        upload_id: str,
        number: int,
        data: bytes,
        bucket: str = "bkt",
        key: str = "k",
        who: Principal = ALICE,
        checksum: tuple[str, str] | None = None,
    ) -> PartRecord:
        """Send one part's body whole, as UploadPart would."""
        body = now(
            self.multipart.begin_part(who, bucket, key, upload_id, number, len(data))
        )
        return now(body.land(who, written(body.target, data), checksum))


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def make_core(tmp_path: Path, min_part: int = 8) -> Core:
    """A fresh core whose parts but the last need ``min_part`` bytes."""
    store, clock = MemoryStore(), Clock()
    for name, scopes in (("alice", "write"), ("bob", "write"), ("root", "admin")):
        now(store.add_user(name, "h", frozenset({scopes}), 0.0))
    blobs = BlobStore(tmp_path / "data")
    blobs.prepare()
    library = Library(store, blobs, run_inline, clock)
    uploads = Resumable(store, blobs, library, run_inline, clock, DAY)
    buckets = Buckets(store, library, blobs, run_inline, clock)
    multipart = Multipart(store, uploads, buckets, clock, min_part=min_part)
    return Core(store, clock, blobs, library, uploads, buckets, multipart)
