"""UploadSink and MultipartSink on their own: bytes, hashes, limits, failures."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import attrs
import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from noded.threads import run_inline
from tests.support import multipart
from uploadd.api.problems import problem_of
from uploadd.errors import UploaddError
from uploadd.ingest.blob import BlobFile, Digest
from uploadd.ingest.multipart import MultipartSink, boundary_of
from uploadd.ingest.sink import Checkpoints, FlowLimits, SinkState, UploadSink


@attrs.define
class Flow:
    calls: list[str] = attrs.field(factory=list)

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")


def sink(
    path: Path, max_size: int | None = None, md5: bool = True
) -> tuple[UploadSink, list[UploaddError]]:
    refused: list[UploaddError] = []
    made = UploadSink(
        BlobFile(path, fsync=True, md5=md5),
        run_inline,
        Flow(),
        FlowLimits(high_water=1 << 20, low_water=1 << 18, max_size=max_size),
        on_reject=refused.append,
    )
    return made, refused


def result(deferred: Deferred[Digest]) -> Digest:
    found: list[Digest] = []
    deferred.addCallback(found.append)
    assert found, "the Deferred has not succeeded"
    return found[0]


def failure(deferred: Deferred[Digest]) -> Failure:
    found: list[Failure] = []
    deferred.addErrback(found.append)
    assert found, "the Deferred has not failed"
    return found[0]


@pytest.mark.parametrize("md5", [True, False])
def test_bytes_and_both_hashes_match_the_body(tmp_path: Path, md5: bool) -> None:
    """Whatever the chunking, the file and the digests equal the body's;
    without md5 the digest says it is unknown (empty)."""
    body = os.urandom(3 * 1024 * 1024 + 17)
    target = tmp_path / "x.part"
    made, _ = sink(target, md5=md5)
    rng = random.Random(5)
    offset = 0
    while offset < len(body):
        step = rng.randint(1, 300_000)
        made.write(body[offset : offset + step])
        offset += step
    digest = result(made.complete())
    assert digest.size == len(body)
    assert digest.sha256 == hashlib.sha256(body).hexdigest()
    assert digest.md5 == (hashlib.md5(body).hexdigest() if md5 else "")
    assert target.read_bytes() == body
    assert made.state is SinkState.DONE


def test_over_the_limit_refuses_and_removes_the_file(tmp_path: Path) -> None:
    """Passing max_size calls on_reject with a 413 and deletes the staging file."""
    target = tmp_path / "x.part"
    made, refused = sink(target, max_size=10)
    made.write(b"12345")
    made.write(b"678901")
    assert [problem_of(p).status for p in refused] == [413]
    assert not target.exists()
    assert isinstance(failure(made.complete()).value, UploaddError)


def test_abort_removes_the_staging_file(tmp_path: Path) -> None:
    """An interrupted body leaves no file."""
    target = tmp_path / "x.part"
    made, refused = sink(target)
    made.write(b"partial")
    made.abort()
    assert not target.exists()
    assert refused == []
    assert made.state is SinkState.FAILED


def test_a_failing_disk_is_a_507(tmp_path: Path) -> None:
    """When the writer fails, the upload is refused with 507 and cleaned up."""
    target = tmp_path / "x.part"
    refused: list[UploaddError] = []

    def broken(function: object, /, *args: object) -> Deferred[object]:
        if getattr(function, "__name__", "") == "write_sha256":
            return fail(OSError(28, "No space left on device"))
        return run_inline(function, *args)  # type: ignore[arg-type]

    made = UploadSink(
        BlobFile(target, fsync=False),
        broken,
        Flow(),
        FlowLimits(1 << 20, 1 << 18, None),
        on_reject=refused.append,
    )
    made.write(b"data")
    assert [problem_of(p).status for p in refused] == [507]
    assert not target.exists()


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_multipart_streams_the_file_part_whatever_the_split(
    tmp_path: Path, step: int
) -> None:
    """The file part reaches the sink intact, fields are kept, at any split."""
    data = os.urandom(100_000) + b"\r\n--almost-a-boundary\r\n" + os.urandom(1000)
    body, ctype = multipart(
        {"filename": "renamed.bin", "parent": "p1"}, "orig.bin", data
    )
    inner, _ = sink(tmp_path / "x.part")
    form = MultipartSink(inner, boundary_of(ctype))
    for offset in range(0, len(body), step):
        form.write(body[offset : offset + step])
    digest = result(form.complete())
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert form.fields == {"filename": "renamed.bin", "parent": "p1"}
    assert form.filename == "orig.bin"
    assert form.content_type == "application/octet-stream"


def test_a_truncated_multipart_body_is_refused(tmp_path: Path) -> None:
    """A body that ends before the closing boundary is a 400 and leaves nothing."""
    body, ctype = multipart({}, "a.bin", b"x" * 1000)
    target = tmp_path / "x.part"
    inner, _ = sink(target)
    form = MultipartSink(inner, boundary_of(ctype))
    form.write(body[:-20])
    with pytest.raises(UploaddError, match="ended early"):
        form.complete()
    assert not target.exists()


def test_oversized_form_fields_are_refused_early(tmp_path: Path) -> None:
    """Text fields are capped: a huge one is a 413 while it streams."""
    body, ctype = multipart({"note": "n" * 70_000}, "a.bin", b"x")
    refused: list[UploaddError] = []
    inner, _ = sink(tmp_path / "x.part")
    form = MultipartSink(inner, boundary_of(ctype), on_reject=refused.append)
    form.write(body)
    assert [problem_of(p).status for p in refused] == [413]


def test_content_types_other_than_form_data_are_415() -> None:
    with pytest.raises(UploaddError) as caught:
        boundary_of(b"application/json")
    assert problem_of(caught.value).status == 415
    with pytest.raises(UploaddError, match="boundary"):
        boundary_of(b"multipart/form-data")


def resuming(
    path: Path,
    runner: object = run_inline,
    every: int = 0,
    refused: list[UploaddError] | None = None,
) -> tuple[UploadSink, list[int], list[int]]:
    """A sink appending to an existing 100-byte file from offset 100, with
    checkpoints every ``every`` bytes; (sink, committed offsets, aborted)."""
    path.write_bytes(b"o" * 100)
    committed: list[int] = []
    aborted: list[int] = []

    def commit(written: int) -> Deferred[None]:
        committed.append(written)
        return succeed(None)

    made = UploadSink(
        BlobFile(path, fsync=True, offset=100),
        runner,  # type: ignore[arg-type]
        Flow(),
        FlowLimits(1 << 20, 1 << 18, None),
        on_aborted=aborted.append,
        on_reject=(refused if refused is not None else []).append,
        checkpoints=Checkpoints(every, commit) if every else None,
    )
    return made, committed, aborted


def test_a_long_body_commits_a_checkpoint_every_so_many_bytes(tmp_path: Path) -> None:
    """Each time another ``every`` bytes are on disk, they are fsynced and
    committed; the body's end needs no checkpoint of its own."""
    made, committed, _ = resuming(tmp_path / "u.bin", every=1000)
    for _ in range(25):
        made.write(b"x" * 100)
    assert committed == [1000, 2000]
    assert made.checkpointed == 2000
    assert result(made.complete()).size == 2500
    assert committed == [1000, 2000]


def test_a_cut_body_keeps_every_byte_written(tmp_path: Path) -> None:
    """A client that goes away leaves all it sent that reached the disk."""
    target = tmp_path / "u.bin"
    made, _, aborted = resuming(target, every=1000)
    made.write(b"x" * 1500)
    made.abort()
    assert aborted == [1500]
    assert target.stat().st_size == 1600


def test_a_full_disk_cuts_the_body_back_to_its_last_checkpoint(tmp_path: Path) -> None:
    """When the disk fails mid-body, the bytes after the last committed
    checkpoint are cut away (their room comes back) and 507 is the answer."""
    target = tmp_path / "u.bin"
    writes = 0

    def filling(function: object, /, *args: object) -> Deferred[object]:
        nonlocal writes
        if getattr(function, "__name__", "") == "write_sha256":
            writes += 1
            if writes > 12:
                return fail(OSError(28, "No space left on device"))
        return run_inline(function, *args)  # type: ignore[arg-type]

    refused: list[UploaddError] = []
    made, committed, aborted = resuming(target, filling, 1000, refused)
    for _ in range(13):
        made.write(b"x" * 100)
    assert committed == [1000]
    assert aborted == [1000]
    assert target.stat().st_size == 1100
    assert [problem_of(p).status for p in refused] == [507]


def test_a_durable_file_starts_its_writeback_as_it_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every WRITEBACK bytes written to a file that will be fsynced, the
    range since the last start goes to the disk's writeback (so the final
    fsync finds little left); a file that will not be fsynced never does."""
    from uploadd.ingest import blob

    started: list[tuple[int, int]] = []
    monkeypatch.setattr(
        blob,
        "start_writeback",
        lambda fd, offset, length: started.append((offset, length)),
    )
    step = blob.WRITEBACK // 2
    piece = memoryview(bytes(step))
    durable = BlobFile(tmp_path / "durable", fsync=True)
    for _ in range(5):
        durable.take(piece)
    durable.close()
    assert started == [(0, 2 * step), (2 * step, 2 * step)]
    started.clear()
    resumed = BlobFile(tmp_path / "durable", fsync=True, offset=5 * step)
    for _ in range(3):
        resumed.take(piece)
    resumed.close()
    assert started == [(5 * step, 2 * step)]
    started.clear()
    cached = BlobFile(tmp_path / "cached", fsync=False)
    for _ in range(6):
        cached.take(piece)
    cached.close()
    assert started == []
