"""Transcode profiles: external programs run without blocking the reactor.

Each profile is an argv built from an input file and an output folder, run
with ``reactor.spawnProcess`` under a time limit. ffmpeg reports progress on
a pipe (``-progress pipe:1``): ``out_time_us`` against the input's duration
(from its ``Duration:`` line) gives a percentage. A failing program fails the
job with the tail of what it printed, never the worker.

Profiles: ``audio-aac`` (any audio to AAC in MP4) and ``pdf-slides`` (one
JPEG per page, pdftoppm).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from uploadd.ingest.sink import Runner

log = Logger()

_DURATION = re.compile(rb"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


class TranscodeFailed(Exception):
    """The program failed, timed out or made nothing; str() says why."""


@attrs.frozen
class Profile:
    name: str
    build: Callable[[Path, Path], list[str]]
    outputs: str  # glob of what it makes in the output folder


def audio_aac(source: Path, out: Path) -> list[str]:
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-y", "-i", str(source),
        "-vn", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart",
        "-progress", "pipe:1", "-nostats", str(out / "audio.m4a"),
    ]  # fmt: skip


def pdf_slides(source: Path, out: Path) -> list[str]:
    return ["pdftoppm", "-jpeg", "-r", "110", str(source), str(out / "slide")]


PROFILES = {
    "audio-aac": Profile("audio-aac", audio_aac, "audio.m4a"),
    "pdf-slides": Profile("pdf-slides", pdf_slides, "slide-*.jpg"),
}


def profiles_for(content_type: str) -> list[str]:
    """The profiles a file gets by default, from its media type."""
    if content_type.startswith("audio/"):
        return ["audio-aac"]
    if content_type == "application/pdf":
        return ["pdf-slides"]
    return []


class ToolProcess(ProcessProtocol):
    """One run: progress from stdout, the tail of stderr, the exit status."""

    def __init__(self, on_progress: Callable[[float], None]) -> None:
        self.ended: Deferred[None] = Deferred()
        self._on_progress = on_progress
        self._duration: float | None = None
        self._stdout = b""
        self._stderr = bytearray()
        self.timed_out = False

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 2:
            self._stderr += data
            del self._stderr[:-8192]
            if self._duration is None and (found := _DURATION.search(self._stderr)):
                hours, minutes, seconds = found.groups()
                self._duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            return
        self._stdout += data
        *lines, self._stdout = self._stdout.split(b"\n")
        for line in lines:
            key, _, value = line.strip().partition(b"=")
            if key == b"out_time_us" and self._duration and value.isdigit():
                done = int(value) / 1e6 / self._duration
                self._on_progress(round(100 * min(1.0, max(0.0, done)), 1))
            elif key == b"progress" and value == b"end":
                self._on_progress(100.0)

    def kill(self) -> None:
        self.timed_out = True
        if self.transport is not None:
            try:
                self.transport.signalProcess("KILL")
            except Exception:
                log.debug("the tool had already exited")

    @property
    def error(self) -> str:
        tail = self._stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        return " / ".join(tail) or "no output"

    def processEnded(self, reason: Failure) -> None:
        if self.timed_out:
            self.ended.errback(TranscodeFailed("the time limit was reached"))
        elif reason.check(ProcessDone):
            self.ended.callback(None)
        else:
            value: Any = reason.value
            code = getattr(value, "exitCode", None)
            if reason.check(ProcessTerminated) and code is None:
                code = f"signal {getattr(value, 'signal', '?')}"
            self.ended.errback(TranscodeFailed(f"exit {code}: {self.error}"))


async def run_profile(
    reactor: Any,
    run: Runner,
    profile: Profile,
    source: Path,
    out: Path,
    time_limit: float,
    on_progress: Callable[[float], None] = lambda percent: None,
) -> list[Path]:
    """Run ``profile`` on ``source`` into ``out``; the files it made, in order."""
    await run(lambda: out.mkdir(parents=True, exist_ok=True))
    args = profile.build(source, out)
    process = ToolProcess(on_progress)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"}
    reactor.spawnProcess(process, args[0], args, env=env)
    killer = reactor.callLater(time_limit, process.kill)
    try:
        await process.ended
    finally:
        if killer.active():
            killer.cancel()
    made: list[Path] = await run(lambda: sorted(out.glob(profile.outputs)))
    if not made:
        raise TranscodeFailed(f"{profile.name} made no output: {process.error}")
    on_progress(100.0)
    return made
