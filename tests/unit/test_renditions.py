"""Renditions through the API: chosen at upload, driven by a worker's token,
fenced by attempt so a redelivered job replaces rather than duplicates."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest_twisted

from tests.support import Harness, auth, harness
from uploadd.workers.wiring import WORKER


def worker(h: Harness) -> dict[bytes, list[bytes]]:
    return auth(h.parts.tokens.issue(WORKER, 3600))


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def upload(
    h: Harness, token: str, name: str, ctype: str, query: str = ""
) -> dict[str, Any]:
    reply = await h.call(
        "PUT",
        f"/files/{name}{query}",
        data=b"ID3 not really audio",
        headers={**auth(token), b"content-type": [ctype.encode()]},
    )
    assert reply.code == 201, reply.body
    shown: dict[str, Any] = reply.json()
    return shown


@pytest_twisted.ensureDeferred()
async def test_a_job_runs_pending_to_ready_and_a_redelivery_replaces(
    tmp_path: Path,
) -> None:
    """An MP3 is PENDING for audio-aac; a worker starts it (RUNNING, percent),
    a second start (the message redelivered) fences off the first attempt,
    whose late output and report are refused; the second attempt's one
    output is the rendition's only output, and the events tell each step."""
    h = harness(tmp_path)
    alice = h.user("alice")
    shown = await upload(h, alice, "talk.mp3", "audio/mpeg")
    assert shown["status"] == "PENDING"
    assert [(r["profile"], r["state"]) for r in shown["renditions"]] == [
        ("audio-aac", "PENDING")
    ]
    file_id = shown["id"]
    stored = [e for e in h.store.events if e.topic == "file.stored"]
    assert stored[0].payload["renditions"] == ["audio-aac"]

    job = f"/files/{file_id}/renditions/audio-aac"
    first = (await h.call("POST", f"{job}/start", headers=worker(h))).json()
    assert first["attempt"] == 1 and first["sha256"] == shown["sha256"]
    # The signed URL fetches the source without a token; a forged one is 403.
    source = await h.call("GET", local(first["source_url"]))
    assert source.code == 200 and source.body == b"ID3 not really audio"
    forged = await h.call("GET", local(first["source_url"]).replace("sig=", "sig=0"))
    assert forged.code == 403

    moved = await h.call(
        "PATCH", job, json={"attempt": 1, "state": "running", "percent": 40},
        headers=worker(h),
    )  # fmt: skip
    assert moved.json()["state"] == "RUNNING" and moved.json()["percent"] == 40
    sent = await h.call(
        "PUT", f"{job}/0?attempt=1&filename=talk-audio.m4a", data=b"first",
        headers={**worker(h), b"content-type": [b"audio/mp4"]},
    )  # fmt: skip
    assert sent.code == 201

    second = (await h.call("POST", f"{job}/start", headers=worker(h))).json()
    assert second["attempt"] == 2
    late = await h.call(
        "PUT", f"{job}/1?attempt=1", data=b"late", headers=worker(h)
    )  # fmt: skip
    assert late.code == 409
    stale = await h.call(
        "PATCH", job, json={"attempt": 1, "state": "ready", "outputs": 1},
        headers=worker(h),
    )  # fmt: skip
    assert stale.code == 409
    again = await h.call(
        "PUT", f"{job}/0?attempt=2&filename=talk-audio.m4a", data=b"second",
        headers={**worker(h), b"content-type": [b"audio/mp4"]},
    )  # fmt: skip
    assert again.code == 201
    assert (
        await h.call("GET", f"/files/{sent.json()['id']}", headers=auth(alice))
    ).code == 404
    done = await h.call(
        "PATCH", job, json={"attempt": 2, "state": "ready", "outputs": 1},
        headers=worker(h),
    )  # fmt: skip
    assert done.json()["state"] == "READY"

    shown = (await h.call("GET", f"/files/{file_id}", headers=auth(alice))).json()
    assert shown["status"] == "READY"
    (rendition,) = shown["renditions"]
    (output,) = rendition["outputs"]
    assert output["filename"] == "talk-audio.m4a"
    assert output["content_type"] == "audio/mp4"
    fetched = await h.call("GET", local(output["download_url"]), headers=auth(alice))
    assert fetched.body == b"second"
    listed = (await h.call("GET", "/files", headers=auth(alice))).json()
    assert [f["id"] for f in listed["results"]] == [file_id]
    topics = [e.topic for e in h.store.events if e.topic.startswith("transcode.")]
    assert topics == [
        "transcode.started",
        "transcode.progress",
        "transcode.started",
        "transcode.done",
    ]
    # Over: a third start is refused, so a late redelivery does nothing.
    assert (await h.call("POST", f"{job}/start", headers=worker(h))).code == 409

    assert (
        await h.call("DELETE", f"/files/{file_id}", headers=auth(alice))
    ).code == 204
    gone = await h.call("GET", f"/files/{output['id']}", headers=auth(alice))
    assert gone.code == 404
    assert not h.parts.blobs.path(output["id"]).exists()


@pytest_twisted.ensureDeferred()
async def test_bad_media_fails_with_the_tools_words(tmp_path: Path) -> None:
    h = harness(tmp_path)
    alice = h.user("alice")
    file_id = (await upload(h, alice, "deck.pdf", "application/pdf"))["id"]
    job = f"/files/{file_id}/renditions/pdf-slides"
    await h.call("POST", f"{job}/start", headers=worker(h))
    failed = await h.call(
        "PATCH", job, json={"attempt": 1, "state": "failed",
                            "error": "exit 1: Syntax Error: Couldn't find trailer"},
        headers=worker(h),
    )  # fmt: skip
    assert failed.json()["state"] == "FAILED"
    shown = (await h.call("GET", f"/files/{file_id}", headers=auth(alice))).json()
    assert shown["status"] == "FAILED"
    assert "Couldn't find trailer" in shown["renditions"][0]["error"]
    assert shown["slides"] == []
    # The admin console's status lists it among recent failures.
    assert (await h.call("GET", "/admin/status", headers=auth(alice))).code == 403
    status = (
        await h.call("GET", "/admin/status", headers=auth(h.user("root", "admin")))
    ).json()
    assert status["bus"] == "in-process" and isinstance(status["outbox"], int)
    (failure,) = status["recent_failures"]
    assert (failure["kind"], failure["file_id"]) == ("transcode", file_id)
    assert "trailer" in failure["reason"]


@pytest_twisted.ensureDeferred()
async def test_a_job_whose_workers_keep_dying_fails_after_max_attempts(
    tmp_path: Path,
) -> None:
    h = harness(tmp_path, settings={("workers", "max_attempts"): "2"})
    alice = h.user("alice")
    file_id = (await upload(h, alice, "a.mp3", "audio/mpeg"))["id"]
    job = f"/files/{file_id}/renditions/audio-aac/start"
    assert (await h.call("POST", job, headers=worker(h))).code == 200
    assert (await h.call("POST", job, headers=worker(h))).code == 200
    third = await h.call("POST", job, headers=worker(h))
    assert third.code == 409
    shown = (await h.call("GET", f"/files/{file_id}", headers=auth(alice))).json()
    assert shown["renditions"][0]["state"] == "FAILED"
    assert "gave up after 2 attempts" in shown["renditions"][0]["error"]


@pytest_twisted.ensureDeferred()
async def test_uploaders_choose_renditions_and_unknown_ones_are_refused_early(
    tmp_path: Path,
) -> None:
    """?renditions= names profiles (or none); an unknown one is refused
    before the body; tus carries it in Upload-Metadata; a plain text file
    gets none by default."""
    h = harness(tmp_path)
    alice = h.user("alice")
    none = await upload(h, alice, "a.mp3", "audio/mpeg", "?renditions=none")
    assert none["renditions"] == [] and none["status"] is None
    chosen = await upload(h, alice, "notes.txt", "text/plain", "?renditions=pdf-slides")
    assert [r["profile"] for r in chosen["renditions"]] == ["pdf-slides"]
    plain = await upload(h, alice, "notes.txt", "text/plain")
    assert plain["renditions"] == []
    refused = await h.call(
        "PUT", "/files/a.mp3?renditions=gif", data=b"x",
        headers={**auth(alice), b"expect": [b"100-continue"]},
    )  # fmt: skip
    assert refused.code == 400 and "gif" in refused.json()["detail"]
    assert h.staged() == []
    import base64

    created = await h.call(
        "POST", "/uploads/", headers={
            **auth(alice), b"tus-resumable": [b"1.0.0"], b"upload-length": [b"3"],
            b"upload-metadata": [
                b"filename " + base64.b64encode(b"a.bin")
                + b",renditions " + base64.b64encode(b"audio-aac")
            ],
        },
    )  # fmt: skip
    assert created.code == 201
    bad = await h.call(
        "POST", "/uploads/", headers={
            **auth(alice), b"tus-resumable": [b"1.0.0"], b"upload-length": [b"3"],
            b"upload-metadata": [b"renditions " + base64.b64encode(b"nope")],
        },
    )  # fmt: skip
    assert bad.code == 400


@pytest_twisted.ensureDeferred()
async def test_only_workers_drive_jobs_and_only_owners_see_them(
    tmp_path: Path,
) -> None:
    h = harness(tmp_path)
    alice, bob = h.user("alice"), h.user("bob")
    file_id = (await upload(h, alice, "a.mp3", "audio/mpeg"))["id"]
    start = f"/files/{file_id}/renditions/audio-aac/start"
    assert (await h.call("POST", start, headers=auth(alice))).code == 403
    put = await h.call(
        "PUT", f"/files/{file_id}/renditions/audio-aac/0?attempt=1", data=b"x",
        headers=auth(alice),
    )  # fmt: skip
    assert put.code == 403
    listed = await h.call("GET", f"/files/{file_id}/renditions", headers=auth(bob))
    assert listed.code == 404
    mine = await h.call("GET", f"/files/{file_id}/renditions", headers=auth(alice))
    assert mine.json()["status"] == "PENDING"
    missing = await h.call(
        "POST", f"/files/{file_id}/renditions/pdf-slides/start", headers=worker(h)
    )
    assert missing.code == 404
