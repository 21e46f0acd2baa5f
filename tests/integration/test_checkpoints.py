"""A long PATCH keeps what reached disk, even when uploadd is killed with SIGKILL."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, start
from tests.integration.wire import ask, request_head

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
APPEND = "application/offset+octet-stream"


def headers(daemon: Daemon, **more: str) -> dict[str, str]:
    named = {name.replace("_", "-"): value for name, value in more.items()}
    return {"Authorization": f"Bearer {daemon.token}", **TUS, **named}


def offset_of(daemon: Daemon, upload: str) -> int:
    head = ask(daemon.port, "HEAD", upload, headers(daemon))
    assert head.status == 200, head
    return int(str(head.header("upload-offset")))


def test_sigkill_at_random_points_of_a_patch_loses_no_checkpoint(
    tmp_path: Path,
) -> None:
    """uploadd is killed with SIGKILL ten times at random points of one large
    PATCH. Each time, after the restart, HEAD reports at least the offset it
    reported just before the kill (the checkpoints reached) and never more
    than the bytes on disk; the finished file is byte-identical."""
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    data = os.urandom(64 * MIB)
    data_dir = tmp_path / "uploadd"
    options = ("--uploads-checkpoint=2M",)
    daemon = start(data_dir, *options)
    created = ask(
        daemon.port, "POST", "/uploads/", headers(daemon, Upload_Length=str(len(data)))
    )
    assert created.status == 201, created
    upload = "/uploads/" + str(created.header("location")).rsplit("/", 1)[-1]
    on_disk = data_dir / "uploads" / (upload.rsplit("/", 1)[-1] + ".bin")
    seen = 0
    history = []
    try:
        for _ in range(10):
            offset = offset_of(daemon, upload)
            assert seen <= offset <= on_disk.stat().st_size, (seen, offset)
            history.append(offset)
            rest = len(data) - offset
            with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
                sock.sendall(
                    request_head(
                        "PATCH",
                        upload,
                        headers(
                            daemon,
                            Upload_Offset=str(offset),
                            Content_Type=APPEND,
                            Content_Length=str(rest),
                        ),
                    )
                )
                cut = rng.randint(1, min(8 * MIB, rest - 1))
                sock.sendall(data[offset : offset + cut])
                time.sleep(rng.uniform(0, 0.3))
                seen = offset_of(daemon, upload)
                daemon.process.send_signal(signal.SIGKILL)
                daemon.process.wait(10)
            daemon = start(data_dir, *options)
        offset = offset_of(daemon, upload)
        assert seen <= offset <= on_disk.stat().st_size
        assert offset > history[0], history  # the checkpoints made progress
        finished = ask(
            daemon.port,
            "PATCH",
            upload,
            headers(daemon, Upload_Offset=str(offset), Content_Type=APPEND),
            data[offset:],
        )
        assert finished.status == 204, finished
        file_id = upload.rsplit("/", 1)[-1]
        assert daemon.json("GET", f"/files/{file_id}")["sha256"] == (
            hashlib.sha256(data).hexdigest()
        )
        status, _, body = daemon.request("GET", f"/files/{file_id}/content")
        assert (status, body == data) == (200, True)
    finally:
        daemon.stop()
