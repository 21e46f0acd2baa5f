"""The transcode profiles with the real programs, on media made here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from noded.reactor import checked
from uploadd.workers.profiles import PROFILES, TranscodeFailed, run_profile

pytestmark = pytest.mark.integration


def threads(function: Any, /, *args: Any) -> Any:
    from twisted.internet.threads import deferToThread

    return deferToThread(function, *args)


def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (make setup installs it)")


def tone_with_gaps(path: Path) -> None:
    """3 s of tone, 2 s of silence, 3 s of tone, as WAV."""
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
            "-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono:d=2",
            "-f", "lavfi", "-i", "sine=frequency=660:duration=3",
            "-filter_complex", "[0:a][1:a][2:a]concat=n=3:v=0:a=1",
            str(path),
        ],
        check=True,
    )  # fmt: skip


def probe(path: Path, entry: str) -> str:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", entry, "-of", "csv=p=0", str(path)],
        capture_output=True,
        check=True,
    )
    return done.stdout.decode().strip()


@pytest_twisted.ensureDeferred()
async def test_audio_becomes_aac_in_mp4_with_progress(tmp_path: Path) -> None:
    from twisted.internet import reactor

    need("ffmpeg", "ffprobe")
    source = tmp_path / "tone.wav"
    tone_with_gaps(source)
    seen: list[float] = []
    made = await run_profile(
        checked(reactor),
        threads,
        PROFILES["audio-aac"],
        source,
        tmp_path / "out",
        60,
        seen.append,
    )
    assert [p.name for p in made] == ["audio.m4a"]
    assert probe(made[0], "stream=codec_name") == "aac"
    assert seen[-1] == 100.0


@pytest_twisted.ensureDeferred()
async def test_bad_media_fails_the_job_not_the_worker(tmp_path: Path) -> None:
    from twisted.internet import reactor

    need("ffmpeg")
    source = tmp_path / "noise.mp3"
    source.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(TranscodeFailed, match="exit"):
        await run_profile(
            checked(reactor),
            threads,
            PROFILES["audio-aac"],
            source,
            tmp_path / "out",
            60,
        )


@pytest_twisted.ensureDeferred()
async def test_pdf_pages_become_jpegs(tmp_path: Path) -> None:
    from twisted.internet import reactor

    need("pdftoppm")
    pdf = tmp_path / "deck.pdf"
    _write_pdf(pdf, 3)
    made = await run_profile(
        checked(reactor), threads, PROFILES["pdf-slides"], pdf, tmp_path / "out", 60
    )
    assert [p.name for p in made] == ["slide-1.jpg", "slide-2.jpg", "slide-3.jpg"]


def _write_pdf(path: Path, pages: int) -> None:
    """A minimal valid PDF with ``pages`` blank pages, written by hand."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + n} 0 R" for n in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>")
    objects += [
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 320 240] >>" for _ in range(pages)
    ]
    body = b"%PDF-1.4\n"
    offsets = []
    for number, text in enumerate(objects, start=1):
        offsets.append(len(body))
        body += f"{number} 0 obj\n{text}\nendobj\n".encode()
    xref = len(body)
    body += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    body += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    body += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    body += f"startxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(body)


@pytest_twisted.ensureDeferred()
async def test_desilence_cuts_silence_from_video_and_audio_alike(
    tmp_path: Path,
) -> None:
    """A 8 s test pattern whose sound has a 2 s gap comes out about 6 s long,
    with video and audio of the same length."""
    from twisted.internet import reactor

    need("ffmpeg", "ffprobe")
    sound = tmp_path / "tone.wav"
    tone_with_gaps(sound)
    video = tmp_path / "clip.mp4"
    make_clip(video, sound)
    from uploadd.workers.profiles import desilence

    seen: list[float] = []
    (made,) = await desilence(
        checked(reactor), threads, video, tmp_path / "out", 120, on_progress=seen.append
    )
    video_length = float(probe(made, "stream=duration").split()[0])
    audio_length = float(probe(made, "stream=duration").split()[1])
    assert 5.0 < video_length < 7.0
    assert abs(video_length - audio_length) < 0.3
    assert seen[-1] == 100.0


def make_clip(path: Path, sound: Path) -> None:
    """8 s of test pattern with ``sound`` as its audio."""
    subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=8",
            "-i", str(sound), "-shortest", "-c:v", "libx264", "-preset", "ultrafast",
            "-pix_fmt", "yuv420p", "-c:a", "aac", str(path),
        ],
        check=True,
    )  # fmt: skip
