"""Transcode profiles: external programs run without blocking the reactor.

Each profile is an argv built from an input file and an output folder, run
with ``reactor.spawnProcess`` under a time limit. ffmpeg reports progress on
a pipe (``-progress pipe:1``): ``out_time_us`` against the input's duration
(from its ``Duration:`` line) gives a percentage. A failing program fails the
job with the tail of what it printed, never the worker.

Profiles: ``audio-aac`` (any audio to AAC in MP4), ``pdf-slides`` (one JPEG
per page, pdftoppm) and ``video-desilence`` (two passes: silencedetect finds
the silent stretches, then one select expression cuts them from video and
audio alike).
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

from noded.reactor import IReactor
from noded.threads import Runner
from uploadd.renditions import NAMES

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


#: The media types of what the profiles make (not left to the host's mime.types).
OUTPUT_TYPES = {".m4a": "audio/mp4", ".jpg": "image/jpeg", ".mp4": "video/mp4"}


@attrs.frozen
class ToolSettings:
    """How the tools run: a wall-clock limit per job, and what
    ``video-desilence`` takes for silence (below ``silence_threshold`` dB for
    at least ``silence_minimum`` seconds)."""

    time_limit: float = 3600.0
    silence_threshold: float = -35.0
    silence_minimum: float = 0.5


class ToolProcess(ProcessProtocol):
    """One run: progress from stdout, the tail of stderr, the exit status."""

    def __init__(
        self,
        on_progress: Callable[[float], None],
        on_line: Callable[[bytes], None] = lambda line: None,
    ) -> None:
        self.ended: Deferred[None] = Deferred()
        self._on_progress = on_progress
        self._on_line = on_line
        self._partial = b""
        self._duration: float | None = None
        self._stdout = b""
        self._stderr = bytearray()
        self.timed_out = False

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == 2:
            *lines, self._partial = (self._partial + data).split(b"\n")
            for line in lines:
                self._on_line(line)
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


_SILENCE = re.compile(rb"silence_(start|end): (-?\d+(?:\.\d+)?)")


def keep_expression(silences: list[tuple[float, float]]) -> str:
    """An ffmpeg select expression keeping everything outside ``silences``."""
    cuts = "+".join(f"between(t,{start:.3f},{end:.3f})" for start, end in silences)
    return f"not({cuts})" if cuts else "1"


async def desilence(
    reactor: IReactor,
    run: Runner,
    source: Path,
    out: Path,
    time_limit: float,
    threshold_db: float = -35.0,
    minimum: float = 0.5,
    on_progress: Callable[[float], None] = lambda percent: None,
) -> list[Path]:
    """``video-desilence``: find the silent stretches (silencedetect), then cut
    them from video and audio with one select expression, so both stay in step."""
    found: list[tuple[str, float]] = []

    def line(text: bytes) -> None:
        if match := _SILENCE.search(text):
            found.append((match.group(1).decode(), float(match.group(2))))

    probe = ToolProcess(lambda percent: on_progress(percent / 2), line)
    detect = [
        "ffmpeg", "-hide_banner", "-nostdin", "-i", str(source),
        "-af", f"silencedetect=noise={threshold_db}dB:d={minimum}",
        "-progress", "pipe:1", "-nostats", "-f", "null", "-",
    ]  # fmt: skip
    await _spawn(reactor, probe, detect, time_limit)
    silences, start = [], None
    for kind, at in found:
        if kind == "start":
            start = at
        elif start is not None:
            silences.append((start, at))
            start = None
    if start is not None:
        silences.append((start, 1e9))
    keep = keep_expression(silences)
    profile = Profile(
        "video-desilence",
        lambda src, dst: [
            "ffmpeg",
            "-hide_banner",
            "-nostdin",
            "-y",
            "-i",
            str(src),
            "-vf",
            f"select='{keep}',setpts=N/FRAME_RATE/TB",
            "-af",
            f"aselect='{keep}',asetpts=N/SR/TB",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-progress",
            "pipe:1",
            "-nostats",
            str(dst / "desilenced.mp4"),
        ],
        "desilenced.mp4",
    )
    return await run_profile(
        reactor,
        run,
        profile,
        source,
        out,
        time_limit,
        lambda p: on_progress(50 + p / 2),
    )


async def _spawn(
    reactor: IReactor, process: ToolProcess, args: list[str], limit: float
) -> None:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"}
    reactor.spawnProcess(process, args[0], args, env=env)
    killer = reactor.callLater(limit, process.kill)
    try:
        await process.ended
    finally:
        if killer.active():
            killer.cancel()


async def run_profile(
    reactor: IReactor,
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
    await _spawn(reactor, process, args, time_limit)
    made: list[Path] = await run(lambda: sorted(out.glob(profile.outputs)))
    if not made:
        raise TranscodeFailed(f"{profile.name} made no output: {process.error}")
    on_progress(100.0)
    return made


async def transcode(
    name: str,
    reactor: IReactor,
    run: Runner,
    source: Path,
    out: Path,
    settings: ToolSettings,
    on_progress: Callable[[float], None] = lambda percent: None,
) -> list[Path]:
    """Run the profile called ``name``; the files it made, in order."""
    if name == "video-desilence":
        return await desilence(
            reactor,
            run,
            source,
            out,
            settings.time_limit,
            settings.silence_threshold,
            settings.silence_minimum,
            on_progress,
        )
    if name not in PROFILES:
        raise TranscodeFailed(f"no profile {name!r}; profiles: {', '.join(NAMES)}")
    return await run_profile(
        reactor, run, PROFILES[name], source, out, settings.time_limit, on_progress
    )
