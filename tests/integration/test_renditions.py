"""Renditions made by real workers with real ffmpeg and pdftoppm: in process
on the embedded defaults, and as `twistd uploadd worker` processes on a real
RabbitMQ, where a worker killed mid-job leaves exactly one rendition."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.broker import Broker
from tests.integration.daemon import (
    Daemon,
    EventStream,
    eventually,
    start,
    stop_process,
    twistd,
)
from tests.integration.test_transcode_tools import (
    _write_pdf,
    make_clip,
    need,
    probe,
    tone_with_gaps,
)

pytestmark = pytest.mark.integration


def mp3(path: Path, seconds: float | None = None) -> bytes:
    """An MP3 made here: the tone with a gap, or ``seconds`` of one tone."""
    if seconds is None:
        wav = path.with_suffix(".wav")
        tone_with_gaps(wav)
        source = ["-i", str(wav)]
    else:
        source = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *source,
         "-c:a", "libmp3lame", "-b:a", "64k", str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


def upload(daemon: Daemon, name: str, body: bytes, ctype: str) -> dict[str, Any]:
    status, _, answer = daemon.request(
        "PUT", f"/files/{name}", body, **{"Content-Type": ctype}
    )
    assert status == 201, answer
    shown: dict[str, Any] = json.loads(answer)
    return shown


def until(daemon: Daemon, file_id: str, done: Any, within: float = 90) -> Any:
    """GET /files/{id} until ``done(document)``; the document."""
    return eventually(
        lambda: (
            (shown := daemon.json("GET", f"/files/{file_id}")) and done(shown) and shown
        ),
        within,
        f"file {file_id} to be done",
    )


def fetch(daemon: Daemon, url: str) -> bytes:
    status, _, body = daemon.request("GET", url.removeprefix(daemon.base))
    assert status == 200
    return body


def topics(daemon: Daemon, until_topic: str, within: float) -> Iterator[str]:
    """Topics from the owner's /events stream, connected at once."""
    stream = EventStream(daemon.port, daemon.token)

    def read() -> Iterator[str]:
        try:
            for topic, _, _ in stream.messages(within):
                yield topic
                if topic == until_topic:
                    return
        finally:
            stream.close()

    return read()


def test_an_mp3_gets_its_aac_rendition_in_process(tmp_path: Path) -> None:
    """On the embedded defaults an MP3 goes PENDING -> READY with one AAC in
    MP4 output, the owner's event stream tells started, progress and done,
    and bad media fails its job with ffmpeg's words while the worker goes on."""
    need("ffmpeg", "ffprobe")
    daemon = start(tmp_path / "uploadd")
    try:
        stream = topics(daemon, "transcode.done", 90)
        shown = upload(daemon, "talk.mp3", mp3(tmp_path / "talk.mp3"), "audio/mpeg")
        assert shown["status"] == "PENDING"
        ready = until(daemon, shown["id"], lambda d: d["status"] != "PENDING")
        assert ready["status"] == "READY", ready
        (rendition,) = ready["renditions"]
        assert rendition["profile"] == "audio-aac" and rendition["percent"] == 100
        (output,) = rendition["outputs"]
        assert output["filename"] == "talk-audio.m4a"
        made = tmp_path / "made.m4a"
        made.write_bytes(fetch(daemon, output["download_url"]))
        assert probe(made, "stream=codec_name") == "aac"
        assert "mp4" in probe(made, "format=format_name")
        seen = list(stream)
        assert seen.index("transcode.started") < seen.index("transcode.done")
        assert "transcode.progress" in seen

        bad = upload(daemon, "noise.mp3", b"not audio at all" * 64, "audio/mpeg")
        failed = until(daemon, bad["id"], lambda d: d["status"] != "PENDING")
        assert failed["status"] == "FAILED"
        assert "exit" in failed["renditions"][0]["error"]
        again = upload(
            daemon, "again.mp3", (tmp_path / "talk.mp3").read_bytes(), "audio/mpeg"
        )
        assert (
            until(daemon, again["id"], lambda d: d["status"] != "PENDING")["status"]
            == "READY"
        )
    finally:
        daemon.stop()


def test_a_pdf_becomes_slides_in_order(tmp_path: Path) -> None:
    """Seed 004: a PDF is PENDING, then READY with one JPEG URL per page, in
    page order."""
    need("pdftoppm")
    pdf = tmp_path / "deck.pdf"
    _write_pdf(pdf, 12)
    daemon = start(tmp_path / "uploadd")
    try:
        shown = upload(daemon, "deck.pdf", pdf.read_bytes(), "application/pdf")
        assert shown["status"] == "PENDING" and shown["slides"] == []
        ready = until(daemon, shown["id"], lambda d: d["status"] == "READY")
        assert len(ready["slides"]) == 12
        names = [o["filename"] for o in ready["renditions"][0]["outputs"]]
        assert names == [f"deck-slide-{n:02d}.jpg" for n in range(1, 13)]
        for url in ready["slides"][:2]:
            assert fetch(daemon, url)[:2] == b"\xff\xd8"
    finally:
        daemon.stop()


def test_a_video_loses_its_silence_with_settings_from_config(tmp_path: Path) -> None:
    """A test-pattern clip with a 2 s silent gap (8 s) comes back about 6 s
    long with sound and picture the same length; a minimum silence longer
    than the gap (set as an option) keeps all 8 s."""
    need("ffmpeg", "ffprobe")
    sound, clip = tmp_path / "tone.wav", tmp_path / "clip.mp4"
    tone_with_gaps(sound)
    make_clip(clip, sound)
    lengths = []
    for minimum in ("0.5s", "3s"):
        daemon = start(
            tmp_path / f"uploadd-{minimum}", f"--workers-silence-minimum={minimum}"
        )
        try:
            shown = upload(daemon, "clip.mp4", clip.read_bytes(), "video/mp4")
            ready = until(daemon, shown["id"], lambda d: d["status"] != "PENDING")
            assert ready["status"] == "READY", ready
            (output,) = ready["renditions"][0]["outputs"]
            assert output["filename"] == "clip-desilenced.mp4"
            made = tmp_path / f"made-{minimum}.mp4"
            made.write_bytes(fetch(daemon, output["download_url"]))
            video, audio = (float(x) for x in probe(made, "stream=duration").split())
            assert abs(video - audio) < 0.3
            lengths.append(video)
        finally:
            daemon.stop()
    assert 5.0 < lengths[0] < 7.0
    assert lengths[1] > 7.5


def worker(uploadd: Daemon, log_dir: Path, broker: Broker) -> subprocess.Popen[bytes]:
    """``twistd uploadd worker --role transcode`` beside ``uploadd`` (its
    secret and port file), once it is connected to the broker."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "twistd.log"
    log.unlink(missing_ok=True)
    process = twistd(
        "uploadd",
        log_dir,
        log,
        ["worker", "--role=transcode", f"--data-dir={uploadd.data_dir}",
         f"--amqp-url={broker.url}", "--workers-transcode-concurrency=1"],
    )  # fmt: skip
    eventually(
        lambda: "connected to the broker" in log.read_text() or process.poll(),
        30,
        "the worker connected",
    )
    assert process.poll() is None, log.read_text()
    return process


def test_a_worker_killed_mid_job_leaves_one_rendition(
    broker: Broker, tmp_path: Path
) -> None:
    """uploadd on RabbitMQ runs no transcode worker itself; a worker process
    takes the job and is SIGKILLed while ffmpeg runs; the broker redelivers
    the message to a second worker, whose attempt 2 makes the only output."""
    need("ffmpeg", "ffprobe")
    body = mp3(tmp_path / "long.mp3", seconds=600)
    daemon = start(
        tmp_path / "uploadd", f"--amqp-url={broker.url}", "--workers-roles=push"
    )
    first = second = None
    try:
        first = worker(daemon, tmp_path / "worker1", broker)
        shown = upload(daemon, "long.mp3", body, "audio/mpeg")
        running = until(
            daemon,
            shown["id"],
            lambda d: (
                d["renditions"][0]["state"] != "PENDING"
                and d["renditions"][0]["percent"] > 0
            ),
        )
        assert running["renditions"][0]["state"] == "RUNNING", running
        first.kill()
        first.wait(10)
        second = worker(daemon, tmp_path / "worker2", broker)
        ready = until(daemon, shown["id"], lambda d: d["status"] != "PENDING", 120)
        (rendition,) = ready["renditions"]
        assert (rendition["state"], rendition["attempt"]) == ("READY", 2), rendition
        (output,) = rendition["outputs"]
        made = tmp_path / "made.m4a"
        made.write_bytes(fetch(daemon, output["download_url"]))
        assert 599 < float(probe(made, "format=duration")) < 601
        # One source and one output in the blob store; nothing else was kept.
        blobs = [p for p in (daemon.data_dir / "files").rglob("*") if p.is_file()]
        assert len(blobs) == 2, blobs
        listed = daemon.json("GET", "/files")
        assert [f["id"] for f in listed["results"]] == [shown["id"]]
    finally:
        for process in (first, second):
            if process is not None:
                stop_process(process)
        daemon.stop()
