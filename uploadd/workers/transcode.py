"""The transcode worker: ``file.stored`` events in, renditions out.

For each profile an event names, the worker starts a new attempt through the
API (learning the source's signed URL), fetches the source, runs the profile
as an external process, reports its progress, sends each output back and
finishes the job. A tool that fails (bad media, the time limit) fails the
job with the tool's words and the message is done; anything else (uploadd
unreachable, a broken download) raises, so the bus delivers the message
again and the next attempt replaces whatever this one left.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from noded.reactor import IReactor
from noded.threads import Runner
from uploadd.events import topics
from uploadd.events.bus import IEventBus
from uploadd.store.interface import Event
from uploadd.workers.client import Job, JobOver, NotYet, RenditionsClient
from uploadd.workers.profiles import (
    OUTPUT_TYPES,
    ToolSettings,
    TranscodeFailed,
    transcode,
)

log = Logger()


@attrs.define
class _Reporter:
    """Progress to the API at most every ``interval`` seconds, one call at a
    time; a lost report is only a missed update."""

    _client: RenditionsClient
    _clock: IReactorTime
    _job: Job
    interval: float
    _last: float = float("-inf")
    _busy: bool = False

    def __call__(self, percent: float) -> None:
        now = self._clock.seconds()
        if self._busy or now - self._last < self.interval or percent >= 100:
            return
        self._busy, self._last = True, now
        reporting = Deferred.fromCoroutine(self._client.report(self._job, percent))
        reporting.addErrback(lambda f: log.debug("progress report lost: {f}", f=f))
        reporting.addBoth(self._idle)

    def _idle(self, _: object) -> None:
        self._busy = False


@attrs.define
class TranscodeWorker:
    _client: RenditionsClient
    _reactor: IReactor
    _run: Runner
    _work_dir: Path
    settings: ToolSettings = attrs.field(factory=ToolSettings)
    progress_interval: float = 1.0

    def attach(self, bus: IEventBus, concurrency: int | None = None) -> None:
        bus.subscribe("transcode", topics.FILE_STORED, self.handle, concurrency)
        # Scratch folders of workers that died mid-job, once surely abandoned.
        self._run(_sweep, self._work_dir, 2 * self.settings.time_limit).addErrback(
            lambda f: log.failure("sweeping the work folder failed", f)
        )

    async def handle(self, event: Event) -> None:
        for profile in event.payload.get("renditions") or ():
            await self.render(event.payload["file_id"], profile)

    async def render(self, file_id: str, profile: str) -> None:
        try:
            job = await self._start(file_id, profile)
        except JobOver as why:
            log.info(
                "{profile} of {file_id} needs no work: {why}",
                profile=profile,
                file_id=file_id,
                why=why,
            )
            return
        log.info(
            "{profile} of {file_id}: attempt {attempt}",
            profile=profile,
            file_id=file_id,
            attempt=job.attempt,
        )
        folder = self._work_dir / f"{file_id}.{profile}.{job.attempt}"
        try:
            await self._work(job, folder)
        except JobOver as why:
            log.info(
                "{profile} of {file_id} was taken over: {why}",
                profile=profile,
                file_id=file_id,
                why=why,
            )
        finally:
            await self._run(shutil.rmtree, folder, True)

    async def _start(self, file_id: str, profile: str) -> Job:
        """A new attempt, once uploadd can hand out the source: one another
        instance received and is still copying to the nodes is waited for
        (as long as a job may run), not failed."""
        deadline = self._reactor.seconds() + self.settings.time_limit
        while True:
            try:
                return await self._client.start(file_id, profile)
            except NotYet as why:
                if self._reactor.seconds() + why.retry_after > deadline:
                    raise
                log.info(
                    "{profile} of {file_id} waits {delay} s: {why}",
                    profile=profile,
                    file_id=file_id,
                    delay=why.retry_after,
                    why=why,
                )
                await deferLater(self._reactor, why.retry_after)

    async def _work(self, job: Job, folder: Path) -> None:
        await self._run(_fresh, folder)
        source = folder / f"source{Path(job.filename).suffix[:12]}"
        await self._client.fetch(job, source)
        try:
            made = await transcode(
                job.profile,
                self._reactor,
                self._run,
                source,
                folder / "out",
                self.settings,
                _Reporter(self._client, self._reactor, job, self.progress_interval),
            )
        except TranscodeFailed as error:
            log.warn(
                "{profile} of {file_id} failed: {error}",
                profile=job.profile,
                file_id=job.file_id,
                error=error,
            )
            await self._client.fail(job, str(error))
            return
        stem = Path(job.filename).stem or job.file_id
        for index, path in enumerate(made):
            name = f"{stem}-{path.name}"
            content_type = OUTPUT_TYPES.get(path.suffix, "application/octet-stream")
            await self._client.send(job, index, path, name, content_type)
        await self._client.finish(job, len(made))
        log.info(
            "{profile} of {file_id} is ready: {count} outputs",
            profile=job.profile,
            file_id=job.file_id,
            count=len(made),
        )


def _fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def _sweep(work_dir: Path, older_than: float) -> None:
    if not work_dir.is_dir():
        return
    now = time.time()
    for folder in work_dir.iterdir():
        if now - folder.stat().st_mtime > older_than:
            shutil.rmtree(folder, ignore_errors=True)
