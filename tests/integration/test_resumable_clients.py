"""Real resumable-upload clients against the real daemon: tuspy, tus-js-client
under node, seed 003's curl sequence, and a SIGKILL in the middle of a PATCH."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader.uploader import Uploader

from tests.integration.daemon import PASSWORD, Daemon, start

pytestmark = pytest.mark.integration
CLIENTS = Path(__file__).resolve().parents[1] / "clients"
MIB = 1024 * 1024


def make_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def stored_bytes(daemon: Daemon, file_id: str) -> bytes:
    status, _, body = daemon.request("GET", f"/files/{file_id}/content")
    assert status == 200
    return body


def test_tuspy_resumes_from_its_url_storage(daemon: Daemon, tmp_path: Path) -> None:
    """tuspy with 256 KiB chunks stops part-way; a new client with the same URL
    storage resumes from the server's offset and finishes the identical file."""
    source = tmp_path / "video.bin"
    data = make_file(source, 3 * MIB + 123)
    storage = FileStorage(str(tmp_path / "urls.json"))
    headers = {"Authorization": f"Bearer {daemon.token}"}

    def uploader() -> Uploader:
        return tus_client.TusClient(
            f"{daemon.base}/uploads/", headers=headers
        ).uploader(
            str(source),
            chunk_size=256 * 1024,
            store_url=True,
            url_storage=storage,
            metadata={"filename": "video.bin"},
        )

    first = uploader()
    first.upload(stop_at=MIB)
    assert 0 < first.offset < len(data)
    second = uploader()
    assert second.url == first.url
    assert second.offset == first.offset  # from the server's HEAD
    second.upload()
    assert second.url is not None
    file_id = second.url.rstrip("/").rsplit("/", 1)[-1]
    assert stored_bytes(daemon, file_id) == data
    stored = daemon.json("GET", f"/files/{file_id}")
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored["filename"] == "video.bin"


@pytest.mark.parametrize(("parallel", "chunk"), [(1, 0), (1, 512 * 1024), (4, 0)])
def test_tus_js_client_uploads_whole_chunked_and_in_parallel(
    daemon: Daemon, tmp_path: Path, parallel: int, chunk: int
) -> None:
    """tus-js-client under node, whole, chunked, and with parallelUploads: 4
    (partial uploads concatenated by the server)."""
    if shutil.which("node") is None or not (CLIENTS / "node_modules").exists():
        pytest.fail("node and tests/clients/node_modules are needed (make setup)")
    source = tmp_path / "photo.bin"
    data = make_file(source, 5 * MIB + 7)
    done = subprocess.run(
        [
            "node",
            str(CLIENTS / "tus_upload.mjs"),
            f"{daemon.base}/uploads/",
            daemon.token,
            str(source),
            str(parallel),
            str(chunk),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    file_id = done.stdout.decode().strip().rstrip("/").rsplit("/", 1)[-1]
    assert stored_bytes(daemon, file_id) == data
    assert daemon.json("GET", f"/files/{file_id}")["filename"] == "photo.bin"


def test_seed_003_curl_sequence(daemon: Daemon, tmp_path: Path) -> None:
    """The seed's README commands, run as a script, give back the same bytes."""
    source = tmp_path / "image.png"
    data = make_file(source, 32634)
    done = subprocess.run(
        [str(CLIENTS / "seed003.sh"), daemon.base, "alice", PASSWORD, str(source)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert Path(done.stdout.decode().strip()).read_bytes() == data


def tus(
    daemon: Daemon, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, dict[str, str]]:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    status, answer, _ = daemon.request(
        method, path, body or None, **{"Tus-Resumable": "1.0.0", **named}
    )
    return status, answer


def test_sigkill_mid_patch_leaves_a_consistent_offset(tmp_path: Path) -> None:
    """uploadd killed with SIGKILL while a PATCH streams: after a restart HEAD
    reports no more than what is durable, and finishing from there gives a
    byte-identical file with the right sha256."""
    data = os.urandom(12 * MIB)
    daemon = start(tmp_path / "uploadd")
    try:
        status, answer = tus(
            daemon,
            "POST",
            "/uploads/",
            Upload_Length=str(len(data)),
            Upload_Metadata="filename a2lsbGVkLmJpbg==",
        )
        assert status == 201
        path = answer["Location"].split(str(daemon.port), 1)[1]
        status, answer = tus(
            daemon,
            "PATCH",
            path,
            data[: 2 * MIB],
            Upload_Offset="0",
            Content_Type="application/offset+octet-stream",
        )
        assert (status, answer["Upload-Offset"]) == (204, str(2 * MIB))
        with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
            sock.sendall(
                (
                    f"PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                    f"Authorization: Bearer {daemon.token}\r\n"
                    f"Upload-Offset: {2 * MIB}\r\n"
                    "Content-Type: application/offset+octet-stream\r\n"
                    f"Content-Length: {len(data) - 2 * MIB}\r\n\r\n"
                ).encode()
            )
            sock.sendall(data[2 * MIB : 7 * MIB])
            daemon.process.send_signal(signal.SIGKILL)
            daemon.process.wait(10)
    finally:
        daemon.stop()

    daemon = start(tmp_path / "uploadd")
    try:
        status, answer = tus(daemon, "HEAD", path)
        assert status == 200
        offset = int(answer["Upload-Offset"])
        on_disk = (
            (tmp_path / "uploadd" / "uploads" / (path.rsplit("/", 1)[-1] + ".bin"))
            .stat()
            .st_size
        )
        assert 2 * MIB <= offset <= on_disk
        assert offset < len(data)  # the killed PATCH did not finish
        status, answer = tus(
            daemon,
            "PATCH",
            path,
            data[offset:],
            Upload_Offset=str(offset),
            Content_Type="application/offset+octet-stream",
        )
        assert (status, answer["Upload-Offset"]) == (204, str(len(data)))
        file_id = path.rsplit("/", 1)[-1]
        assert stored_bytes(daemon, file_id) == data
        assert (
            daemon.json("GET", f"/files/{file_id}")["sha256"]
            == hashlib.sha256(data).hexdigest()
        )
    finally:
        daemon.stop()
