"""The file library: the one path by which a finished body becomes a stored file.

Single-request uploads, multipart forms and (later) resumable uploads all end
here: the staging file is renamed into place and fsynced, then the record is
written, then the ``on_stored`` hooks run. A record never exists before its
bytes are durable; a failure on the way removes the bytes.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from noded.threads import Runner
from uploadd import errors
from uploadd.auth.tokens import Principal
from uploadd.events import topics
from uploadd.ingest.blob import Digest
from uploadd.metrics import Metrics
from uploadd.renditions import PENDING, ProfilePolicy
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import (
    MISSING,
    Conflict,
    Event,
    FileRecord,
    IMetadataStore,
    Rendition,
)

log = Logger()

_CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")
MAX_NAME_BYTES = 255


def clean_filename(name: str) -> str:
    """The last path segment of ``name`` without control characters; 400 if empty."""
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if name in ("", ".", ".."):
        raise errors.Invalid("the file needs a name")
    while len(name.encode("utf-8")) > MAX_NAME_BYTES:
        name = name[:-1]
    return name


def clean_content_type(given: str | None, filename: str) -> str:
    """The declared media type, or one guessed from the name, without parameters."""
    declared = (given or "").split(";")[0].strip().lower()
    if declared and declared != "application/octet-stream":
        if not _CONTENT_TYPE.match(declared):
            raise errors.Invalid("Content-Type is not a media type", content_type=given)
        return declared
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


@attrs.frozen
class OutputSlot:
    """Where a worker's output goes: place ``index`` of ``source``'s
    ``profile`` rendition, for ``attempt``."""

    source: FileRecord
    profile: str
    index: int
    attempt: int


@attrs.define
class Library:
    _store: IMetadataStore
    _blobs: BlobStore
    _run: Runner
    _clock: IReactorTime
    policy: ProfilePolicy = attrs.field(factory=ProfilePolicy)
    on_stored: list[Callable[[FileRecord], object]] = attrs.field(factory=list)
    on_deleted: list[Callable[[FileRecord], object]] = attrs.field(factory=list)
    #: Awaited before a new file is answered (a first copy on a node, where
    #: instances share the store); None: answered once it is on disk here.
    confirm: Callable[[FileRecord], Awaitable[None]] | None = None
    metrics: Metrics = attrs.field(factory=Metrics, kw_only=True)

    async def store(
        self,
        owner: Principal,
        blob_id: str,
        digest: Digest,
        filename: str,
        content_type: str | None,
        parent: str | None,
        staged: Path | None = None,
        renditions: str | None = None,
        output: OutputSlot | None = None,
    ) -> FileRecord:
        """Commit the staged blob ``blob_id`` (or the file ``staged``) as a new
        file of ``owner`` with the ``renditions`` asked for (None: the
        defaults for its type), or as a worker's ``output``."""
        try:
            name = clean_filename(filename)
            if parent:
                await self._check_parent(owner, parent)
            await self._run(self._blobs.commit, blob_id, staged)
            now = self._clock.seconds()
            record = FileRecord(
                id=blob_id,
                owner_id=output.source.owner_id if output else owner.user_id,
                filename=name,
                size=digest.size,
                sha256=digest.sha256,
                md5=digest.md5,
                content_type=clean_content_type(content_type, name),
                created_at=now,
                parent=parent or None,
                rendition_of=output.source.id if output else None,
            )
            if output is not None:
                await self._add_output(record, output)
            else:
                profiles = self.policy.choose(record.content_type, renditions)
                event = file_event(topics.FILE_STORED, record, self._clock)
                event.payload["renditions"] = list(profiles)
                await self._store.add_file(
                    record,
                    [event],
                    [Rendition(record.id, p, PENDING, now, now) for p in profiles],
                )
                for profile in profiles:
                    self.metrics.transcodes.labels(profile, PENDING).inc()
        except BaseException:
            if staged is None:
                await self._run(self._blobs.remove, blob_id)
            else:
                # A resumable upload's data goes back where it was, for a retry.
                await self._run(_restore, self._blobs.path(blob_id), staged)
            raise
        log.info(
            "stored {file_id} {filename} {size} for {owner}",
            file_id=record.id,
            filename=record.filename,
            size=record.size,
            owner=owner.username,
        )
        for hook in self.on_stored:
            hook(record)
        if self.confirm is not None:
            await self.confirm(record)
        return record

    async def _add_output(self, record: FileRecord, output: OutputSlot) -> None:
        event = file_event(topics.FILE_STORED, record, self._clock)
        event.payload["profile"] = output.profile
        try:
            replaced = await self._store.add_output(
                record, output.profile, output.index, output.attempt, [event]
            )
        except Conflict as error:
            raise errors.Conflict(f"this output is not wanted: {error}") from None
        if replaced is not None:
            await self._run(self._blobs.remove, replaced)

    async def _check_parent(self, owner: Principal, parent: str) -> None:
        found = await self._store.get_file(parent)
        if found is None or (found.owner_id != owner.user_id and not owner.is_admin):
            raise errors.Unprocessable(
                f"parent {parent} is not a file of yours", parent=parent
            )

    async def delete(self, record: FileRecord) -> None:
        """Forget ``record`` and its bytes, with its renditions' outputs."""
        for rendition in await self._store.renditions_of(record.id):
            for output_id in rendition.outputs:
                if output_id == MISSING:
                    continue
                output = await self._store.get_file(output_id)
                if output is not None:
                    await self.delete(output)
        await self._store.delete_file(
            record.id, [file_event(topics.FILE_DELETED, record, self._clock)]
        )
        for hook in self.on_deleted:
            hook(record)
        await self._run(self._blobs.remove, record.id)
        log.info("deleted {file_id}", file_id=record.id)

    async def deleted(self, event: Event) -> None:
        """``file.deleted``, heard by every instance: the file may have been
        deleted through another one than the instance whose disk holds its
        bytes, and they go too (unless a file of that id is back)."""
        file_id = event.payload["file_id"]
        if await self._store.get_file(file_id) is None:
            await self._run(self._blobs.remove, file_id)


def file_event(topic: str, record: FileRecord, clock: IReactorTime) -> Event:
    """The event announcing a change to ``record``."""
    return Event(
        topic,
        {
            "file_id": record.id,
            "owner_id": record.owner_id,
            "filename": record.filename,
            "size": record.size,
            "sha256": record.sha256,
            "content_type": record.content_type,
            "parent": record.parent,
            "rendition_of": record.rendition_of,
        },
        owner_id=record.owner_id,
        created_at=clock.seconds(),
    )


def _restore(final: Path, staged: Path) -> None:
    if final.exists() and not staged.exists():
        final.replace(staged)
