"""Renditions: which transcodes a file gets, and the states workers report.

They are chosen when a file is stored: the uploader's ``renditions`` (upload
metadata, a query argument or a form field: profile names separated by commas
or spaces, or ``none``), else the defaults for its media type (``[workers]
profiles``). Each is a job: PENDING; RUNNING with a percentage once a worker
starts it (every start is a new attempt, and only the newest attempt may add
outputs or finish, so a redelivered job replaces rather than duplicates);
then READY with its outputs in order, or FAILED with the tool's words. Each
change writes a ``transcode.*`` event in the same transaction, so live
streams, webhooks and email hear of it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime

from uploadd import errors
from uploadd.events import topics
from uploadd.failures import FailureLog
from uploadd.metrics import Metrics
from uploadd.store.interface import (
    MISSING,
    Conflict,
    Event,
    FileRecord,
    IMetadataStore,
    Rendition,
)

#: Every transcode profile, by name (the workers hold what each one runs).
NAMES = ("audio-aac", "video-desilence", "pdf-slides")

#: The media types each profile is made for unless the uploader says otherwise.
DEFAULTS = (
    ("audio/*", "audio-aac"),
    ("video/*", "video-desilence"),
    ("application/pdf", "pdf-slides"),
)

PENDING, RUNNING, READY, FAILED = "pending", "running", "ready", "failed"

#: The profile whose outputs are a PDF's slides, in order.
SLIDES = "pdf-slides"


async def slides_of(store: IMetadataStore, source_id: str) -> list[FileRecord]:
    """The slides of a file, in order: the outputs of its ready ``SLIDES``
    rendition (none while it is not ready)."""
    found = await store.get_rendition(source_id, SLIDES)
    slides = []
    for output_id in found.outputs if found and found.state == READY else ():
        output = await store.get_file(output_id) if output_id != MISSING else None
        if output is not None:
            slides.append(output)
    return slides


def parse_requested(text: str) -> tuple[str, ...]:
    """Profile names from an uploader (``none`` or nothing: no renditions);
    400 naming an unknown one."""
    names = [n for n in re.split(r"[\s,]+", text.strip().lower()) if n]
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise errors.Invalid(
            f"unknown rendition {', '.join(unknown)}; profiles are"
            f" {', '.join(NAMES)} (or none)",
            renditions=text,
        )
    return tuple(dict.fromkeys(names))


def parse_defaults(text: str) -> tuple[tuple[str, str], ...]:
    """``[workers] profiles``: ``media/type=profile`` pairs, space separated."""
    pairs = []
    for word in text.split():
        pattern, equals, profile = word.partition("=")
        if not equals or "/" not in pattern or profile not in NAMES:
            raise ValueError(
                f"expected media/type=profile pairs with profiles from"
                f" {', '.join(NAMES)}, got {word!r}"
            )
        pairs.append((pattern.lower(), profile))
    return tuple(pairs)


@attrs.frozen
class ProfilePolicy:
    """Which profiles a new file gets."""

    defaults: tuple[tuple[str, str], ...] = DEFAULTS

    def choose(self, content_type: str, requested: str | None) -> tuple[str, ...]:
        if requested is not None:
            return parse_requested(requested)
        found = (
            p for pattern, p in self.defaults if fnmatch.fnmatch(content_type, pattern)
        )
        return tuple(dict.fromkeys(found))


def rendition_event(
    topic: str, source: FileRecord, rendition: Rendition, at: float
) -> Event:
    """The ``transcode.*`` event telling the source's owner of a change."""
    return Event(
        topic,
        {
            "file_id": source.id,
            "filename": source.filename,
            "profile": rendition.profile,
            "state": rendition.state.upper(),
            "percent": rendition.percent,
            "error": rendition.error,
            "attempt": rendition.attempt,
            "outputs": [o for o in rendition.outputs if o != MISSING],
        },
        owner_id=source.owner_id,
        created_at=at,
    )


@attrs.define
class Renditions:
    """The job states, as workers report them through the API."""

    _store: IMetadataStore
    _clock: IReactorTime
    max_attempts: int = 3
    on_change: list[Callable[[], object]] = attrs.field(factory=list)
    failures: FailureLog | None = None
    metrics: Metrics = attrs.field(factory=Metrics, kw_only=True)

    async def job(self, source_id: str, profile: str) -> tuple[FileRecord, Rendition]:
        source = await self._store.get_file(source_id)
        rendition = await self._store.get_rendition(source_id, profile)
        if source is None or rendition is None:
            raise errors.NotFound(f"no rendition {profile} of file {source_id}")
        return source, rendition

    async def start(self, source_id: str, profile: str) -> tuple[FileRecord, Rendition]:
        """A new attempt at the job: RUNNING from 0 %. 409 once it is over;
        past ``max_attempts`` starts it fails instead."""
        source, current = await self.job(source_id, profile)
        if current.state in (READY, FAILED):
            raise _finished(current)
        now = self._clock.seconds()
        if current.attempt >= self.max_attempts:
            failed = attrs.evolve(
                current,
                state=FAILED,
                error=f"gave up after {current.attempt} attempts that did not finish",
            )
            await self._save(source, current, failed, topics.TRANSCODE_FAILED)
            raise _finished(failed)
        started = attrs.evolve(
            current,
            state=RUNNING,
            attempt=current.attempt + 1,
            percent=0.0,
            error=None,
            started_at=now,
        )
        await self._save(source, current, started, topics.TRANSCODE_STARTED)
        return source, started

    async def progress(
        self, source_id: str, profile: str, attempt: int, percent: float
    ) -> Rendition:
        source, current = await self.current(source_id, profile, attempt)
        moved = attrs.evolve(
            current,
            percent=round(min(100.0, max(0.0, percent)), 1),
        )
        await self._save(source, current, moved, topics.TRANSCODE_PROGRESS)
        return moved

    async def fail(
        self, source_id: str, profile: str, attempt: int, error: str
    ) -> Rendition:
        source, current = await self.current(source_id, profile, attempt)
        failed = attrs.evolve(
            current,
            state=FAILED,
            error=error.strip()[:2000] or "the transcode failed",
        )
        await self._save(source, current, failed, topics.TRANSCODE_FAILED)
        return failed

    async def finish(
        self, source_id: str, profile: str, attempt: int, count: int
    ) -> tuple[Rendition, list[str]]:
        """READY with the first ``count`` outputs; (the rendition, ids of
        outputs an earlier attempt left beyond them, now forgotten)."""
        source, current = await self.current(source_id, profile, attempt)
        outputs = current.outputs[:count]
        if count < 1 or len(outputs) < count or MISSING in outputs:
            raise errors.Conflict(
                f"attempt {attempt} has sent {len(outputs) - outputs.count(MISSING)}"
                f" of {count} outputs",
            )
        extra = [o for o in current.outputs[count:] if o != MISSING]
        ready = attrs.evolve(
            current,
            state=READY,
            percent=100.0,
            outputs=outputs,
        )
        await self._save(source, current, ready, topics.TRANSCODE_DONE, drop=extra)
        return ready, extra

    async def current(
        self, source_id: str, profile: str, attempt: int
    ) -> tuple[FileRecord, Rendition]:
        """The job, if ``attempt`` is the one running it; else 409."""
        source, current = await self.job(source_id, profile)
        if current.attempt != attempt or current.state != RUNNING:
            raise _superseded(current, attempt)
        return source, current

    async def _save(
        self,
        source: FileRecord,
        current: Rendition,
        new: Rendition,
        topic: str,
        drop: list[str] | None = None,
    ) -> None:
        """Store ``new`` (stamped now) with its event, if no other change got
        there first; a failure also goes to the failure log. A job entering
        a state (an attempt starting, or its end) is counted, an ended one
        with the time since its last start."""
        now = self._clock.seconds()
        new = attrs.evolve(new, updated_at=now)
        event = rendition_event(topic, source, new, now)
        try:
            await self._store.save_rendition(new, current.attempt, [event], drop or ())
        except Conflict:
            raise _superseded(current, current.attempt) from None
        if topic != topics.TRANSCODE_PROGRESS:
            self.metrics.transcodes.labels(new.profile, new.state).inc()
        if new.state in (READY, FAILED) and new.started_at is not None:
            self.metrics.transcode_seconds.labels(new.profile, new.state).observe(
                max(0.0, now - new.started_at)
            )
        if new.state == FAILED and self.failures is not None:
            self.failures.add(
                "transcode", new.error or "", file_id=source.id, profile=new.profile
            )
        for hook in self.on_change:
            hook()


def _finished(rendition: Rendition) -> errors.Conflict:
    return errors.Conflict(
        f"rendition {rendition.profile} is {rendition.state.upper()} already",
        state=rendition.state.upper(),
    )


def _superseded(rendition: Rendition, attempt: int) -> errors.Conflict:
    return errors.Conflict(
        f"attempt {attempt} at {rendition.profile} is not the running one"
        f" (attempt {rendition.attempt}, {rendition.state.upper()})",
        state=rendition.state.upper(),
        attempt=rendition.attempt,
    )


def document(rendition: Rendition, outputs: list[dict[str, Any]]) -> dict[str, Any]:
    """A rendition as the API shows it."""
    return {
        "profile": rendition.profile,
        "state": rendition.state.upper(),
        "percent": rendition.percent,
        "error": rendition.error,
        "attempt": rendition.attempt,
        "outputs": outputs,
    }
