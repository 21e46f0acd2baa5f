"""Transcode process protocol, fed by hand; profiles chosen by media type."""

from __future__ import annotations

import pytest
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.python.failure import Failure

from uploadd.api.problems import problem_of
from uploadd.errors import UploaddError
from uploadd.renditions import ProfilePolicy, parse_defaults, parse_requested
from uploadd.workers.profiles import ToolProcess, TranscodeFailed


def test_progress_comes_from_ffmpeg_progress_lines() -> None:
    """Duration from stderr, out_time_us from stdout: a percentage; 'end' 100."""
    seen: list[float] = []
    process = ToolProcess(seen.append)
    process.childDataReceived(2, b"Input #0\n  Duration: 00:00:10.00, start: 0\n")
    process.childDataReceived(1, b"frame=1\nout_time_us=2500000\nprogress=con")
    process.childDataReceived(1, b"tinue\nout_time_us=5000000\n")
    process.childDataReceived(1, b"progress=end\n")
    assert seen == [25.0, 50.0, 100.0]
    outcomes: list[object] = []
    process.ended.addBoth(outcomes.append)
    process.processEnded(Failure(ProcessDone(0)))
    assert outcomes == [None]


def test_a_failing_tool_fails_the_job_with_its_words() -> None:
    """A non-zero exit is a TranscodeFailed carrying the tail of stderr."""
    process = ToolProcess(lambda p: None)
    process.childDataReceived(2, b"header\nInvalid data found when processing input\n")
    failures: list[Failure] = []
    process.ended.addErrback(failures.append)
    process.processEnded(Failure(ProcessTerminated(exitCode=1)))
    assert failures[0].check(TranscodeFailed)
    assert "exit 1" in str(failures[0].value)
    assert "Invalid data found" in str(failures[0].value)


@pytest.mark.parametrize(
    ("content_type", "profiles"),
    [
        ("audio/mpeg", ["audio-aac"]),
        ("video/mp4", ["video-desilence"]),
        ("application/pdf", ["pdf-slides"]),
        ("text/plain", []),
    ],
)
def test_profiles_by_media_type(content_type: str, profiles: list[str]) -> None:
    assert list(ProfilePolicy().choose(content_type, None)) == profiles


def test_the_uploader_chooses_profiles_or_none() -> None:
    """A request overrides the defaults; none asks for nothing; an unknown
    name is a 400 naming the profiles."""
    policy = ProfilePolicy()
    assert policy.choose("audio/mpeg", "none") == ()
    assert policy.choose("text/plain", "pdf-slides, audio-aac") == (
        "pdf-slides",
        "audio-aac",
    )
    with pytest.raises(UploaddError) as refused:
        parse_requested("audio-aac gif")
    assert problem_of(refused.value).status == 400
    assert "gif" in str(refused.value.detail) and "pdf-slides" in refused.value.detail


def test_default_profiles_are_configurable() -> None:
    policy = ProfilePolicy(parse_defaults("audio/mpeg=audio-aac image/*=pdf-slides"))
    assert policy.choose("audio/ogg", None) == ()
    assert policy.choose("image/png", None) == ("pdf-slides",)
    with pytest.raises(ValueError, match="thumbnail"):
        parse_defaults("image/*=thumbnail")
