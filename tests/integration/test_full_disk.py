"""uploadd on a disk that fills up: 507s, the space comes back, uploads resume."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, eventually, start
from tests.integration.wire import Answer, ask, push

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs of the test's own (tests run as root), unmounted after."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40m,mode=0700", "tmpfs", str(mount)],
        check=True,
    )
    try:
        yield mount
    finally:
        log = mount / "twistd.log"
        if log.exists():  # kept beside the mount for a failure's reader
            (tmp_path / "twistd.log").write_bytes(log.read_bytes())
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def fill(path: Path) -> int:
    """Write ``path`` until the disk is full; how many bytes it took."""
    written = 0
    block = b"\0" * (64 * 1024)
    with path.open("wb", buffering=0) as handle:
        with contextlib.suppress(OSError):
            while True:
                written += handle.write(block)
        with contextlib.suppress(OSError):
            while True:
                if not handle.write(b"\0"):
                    break
                written += 1
    return written


def tus_headers(daemon: Daemon, **headers: str) -> dict[str, str]:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return {"Authorization": f"Bearer {daemon.token}", **TUS, **named}


def uploads_dir(daemon: Daemon) -> list[Path]:
    return sorted((daemon.data_dir / "uploads").glob("*.bin"))


def expect_507(answer: Answer, what: str) -> None:
    assert (answer.status, answer.problem) == (507, True), (what, answer)
    assert answer.seconds < 1.0, (what, answer.seconds)


def test_a_full_disk_is_507_and_gives_its_space_back(small_disk: Path) -> None:
    """A tus PATCH and a whole-file Content-Range POST that fill the disk are
    507 and keep no bytes past the last checkpoint (the POST, which nobody can
    resume, none at all); on a full disk database writes are 507 and deleting
    an upload works; once space is freed the next upload is stored."""
    daemon = start(small_disk, "--uploads-checkpoint=4M")
    try:
        created = ask(
            daemon.port,
            "POST",
            "/uploads/",
            tus_headers(daemon, Upload_Length=str(64 * MIB)),
        )
        assert created.status == 201, created
        upload = "/uploads/" + str(created.header("location")).rsplit("/", 1)[-1]
        patched = push(
            daemon.port,
            "PATCH",
            upload,
            tus_headers(
                daemon,
                Upload_Offset="0",
                Content_Type="application/offset+octet-stream",
            ),
            64 * MIB,
        )
        assert (patched.status, patched.problem) == (507, True), patched
        head = ask(daemon.port, "HEAD", upload, tus_headers(daemon))
        offset = int(str(head.header("upload-offset")))
        # What the checkpoints committed stays; nothing past it does.
        assert 4 * MIB <= offset < 40 * MIB
        eventually(
            lambda: [p.stat().st_size for p in uploads_dir(daemon)] == [offset],
            within=5,
            what="the upload's file cut back to its offset",
        )

        whole = push(
            daemon.port,
            "POST",
            "/storage/tmp-upload/",
            {"Authorization": f"Bearer {daemon.token}"},
            64 * MIB,
        )
        assert (whole.status, whole.problem) == (507, True), whole
        eventually(
            lambda: len(uploads_dir(daemon)) == 1,
            within=5,
            what="the whole-file POST, which nobody can resume, leaving nothing",
        )
        assert daemon.staged() == []

        filler = small_disk / "filler"
        fill(filler)
        auth = {"Authorization": f"Bearer {daemon.token}"}
        expect_507(ask(daemon.port, "PUT", "/files/empty.bin", auth), "0-byte PUT")
        expect_507(
            ask(
                daemon.port,
                "POST",
                "/uploads/",
                tus_headers(daemon, Upload_Length="10"),
            ),
            "tus create",
        )
        deleted = ask(daemon.port, "DELETE", upload, tus_headers(daemon))
        assert deleted.status == 204, deleted
        assert uploads_dir(daemon) == []

        filler.unlink()
        stored = ask(daemon.port, "PUT", "/files/after.bin", auth, os.urandom(MIB))
        assert stored.status == 201, stored
        assert daemon.json("GET", "/health")["uploads_in_flight"] == 0
    finally:
        daemon.stop()


def test_startup_reconciles_resumable_uploads_with_the_store(tmp_path: Path) -> None:
    """Bytes past an open upload's recorded offset are cut at startup, and a
    data file no upload owns is removed."""
    daemon = start(tmp_path / "uploadd")
    try:
        created = ask(
            daemon.port,
            "POST",
            "/uploads/",
            tus_headers(daemon, Upload_Length=str(MIB)),
        )
        upload = "/uploads/" + str(created.header("location")).rsplit("/", 1)[-1]
        patched = ask(
            daemon.port,
            "PATCH",
            upload,
            tus_headers(
                daemon,
                Upload_Offset="0",
                Content_Type="application/offset+octet-stream",
            ),
            b"a" * 1000,
        )
        assert patched.status == 204, patched
    finally:
        daemon.stop()
    (data,) = uploads_dir(daemon)
    with data.open("ab") as handle:
        handle.write(b"b" * 5000)  # what a crash mid-body leaves unrecorded
    stray = data.with_name("f" * 32 + ".bin")
    stray.write_bytes(b"c" * 100)
    daemon = start(tmp_path / "uploadd")
    try:
        assert uploads_dir(daemon) == [data]
        assert data.stat().st_size == 1000
        head = ask(daemon.port, "HEAD", upload, tus_headers(daemon))
        assert head.header("upload-offset") == "1000"
    finally:
        daemon.stop()
