"""uploadctl login, upload and download against a real uploadd (and a real
storage node for downloads): a run killed mid-transfer behind a relay that
stalls, then run again, asks only for what is missing (the server's offset,
the partial file's size) and ends with identical bytes."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import BIN, PASSWORD, Daemon, eventually
from tests.integration.relay import Relay
from tests.integration.test_cluster import uploadd_with
from tests.integration.test_noded import start_node

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
#: What the request heads of one run may add to the bytes of a file.
HEADS = 64 * 1024


@pytest.fixture
def relay() -> Iterator[Relay]:
    running = Relay()
    try:
        yield running
    finally:
        running.close()


def env(tmp_path: Path) -> dict[str, str]:
    """The client's environment: its state under tmp_path, no server settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("UPLOADD_")}
    return {**clean, "XDG_STATE_HOME": str(tmp_path / "state")}


def work(tmp_path: Path) -> Path:
    found = tmp_path / "work"
    found.mkdir(exist_ok=True)
    return found


def uploadctl(
    tmp_path: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "uploadctl"), *args],
        cwd=work(tmp_path),
        env=env(tmp_path),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def spawn(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "uploadctl"), *args],
        cwd=work(tmp_path),
        env=env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def login(tmp_path: Path, url: str) -> None:
    done = uploadctl(tmp_path, "login", "--url", url, "alice", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


def make_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def file_ids(stdout: str) -> dict[str, str]:
    """Local path -> file id, from upload's lines 'URL<TAB>PATH'."""
    lines = [line.split("\t") for line in stdout.splitlines()]
    return {path: url.rsplit("/", 1)[-1] for url, path in lines}


def stored(daemon: Daemon, file_id: str) -> bytes:
    status, _, body = daemon.request("GET", f"/files/{file_id}/content")
    assert status == 200
    return body


def kept(tmp_path: Path) -> dict[str, bool]:
    """The upload URLs uploadctl keeps, and whether each finished."""
    path = tmp_path / "state" / "uploadd" / "uploads.json"
    document = json.loads(path.read_text()) if path.exists() else {}
    return {entry["url"]: entry["done"] for entry in document.values()}


def kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait(10)


def server_offset(daemon: Daemon, url: str) -> int | None:
    """The offset uploadd reports for an upload, once a second HEAD agrees."""
    path = "/uploads/" + url.rstrip("/").rsplit("/", 1)[-1]

    def offset() -> int | None:
        tus = {"Tus-Resumable": "1.0.0"}
        status, headers, _ = daemon.request("HEAD", path, None, **tus)
        return int(headers["Upload-Offset"]) if status == 200 else None

    first = offset()
    time.sleep(0.5)
    return first if first is not None and first == offset() else None


def test_login_then_files_go_up_at_once_and_come_back_the_same(
    daemon: Daemon, tmp_path: Path
) -> None:
    """A wrong password is refused; the token is kept 0600; two files upload
    at once (--parallel 2), each printed with its URL; the same command again
    sends nothing and prints the same; a download into a directory takes the
    file's name."""
    refused = uploadctl(
        tmp_path, "login", "--url", daemon.base, "alice", stdin="wrong-one\n"
    )
    assert refused.returncode == 1
    assert "wrong username or password" in refused.stderr
    login(tmp_path, daemon.base)
    token_file = tmp_path / "state" / "uploadd" / "login.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    first = make_file(work(tmp_path) / "first.bin", 3 * MIB + 5)
    second = make_file(work(tmp_path) / "second.txt", 1000)
    done = uploadctl(
        tmp_path,
        "upload",
        "first.bin",
        "second.txt",
        "--parallel",
        "2",
        "--chunk",
        "1M",
    )
    assert done.returncode == 0, done.stderr
    ids = file_ids(done.stdout)
    assert done.stdout.startswith(
        f"{daemon.base}/files/{ids['first.bin']}\tfirst.bin\n"
    )
    assert stored(daemon, ids["first.bin"]) == first
    assert stored(daemon, ids["second.txt"]) == second
    assert done.stderr.count("stored, sha256 verified") == 2
    assert sorted(kept(tmp_path).values()) == [True, True]
    again = uploadctl(tmp_path, "upload", "first.bin", "second.txt")
    assert again.returncode == 0, again.stderr
    assert sorted(again.stdout.splitlines()) == sorted(done.stdout.splitlines())
    assert again.stderr.count("already stored as") == 2
    assert "uploading" not in again.stderr
    (tmp_path / "copies").mkdir()
    fetched = uploadctl(
        tmp_path, "download", ids["first.bin"], "-o", str(tmp_path / "copies")
    )
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "copies" / "first.bin").read_bytes() == first
    twice = uploadctl(
        tmp_path, "download", ids["first.bin"], "-o", str(tmp_path / "copies")
    )
    assert twice.returncode == 2 and "exists" in twice.stderr


def test_a_killed_upload_continues_from_the_servers_offset(
    daemon: Daemon, relay: Relay, tmp_path: Path
) -> None:
    """uploadctl killed while its upload is stalled part-way: run again, its
    first PATCH starts at the offset the server reports, it sends only the
    rest, and the stored file is the local one."""
    relay.upstream = daemon.port
    through = f"http://127.0.0.1:{relay.port}"
    login(tmp_path, through)
    size = 24 * MIB + 123
    data = make_file(work(tmp_path) / "big.bin", size)
    relay.reset()
    relay.up_budget = 10 * MIB
    process = spawn(tmp_path, "upload", "big.bin", "--chunk", "4M")
    try:
        assert relay.stalled.wait(60), "the upload never reached 10 MiB"
        (url,) = eventually(lambda: kept(tmp_path), what="a kept upload URL")
    finally:
        kill(process)
        relay.drop()
    offset = eventually(
        lambda: server_offset(daemon, url), what="the server's offset settles"
    )
    assert 0 < offset < size

    relay.reset()
    done = uploadctl(tmp_path, "upload", "big.bin", "--chunk", "4M")
    assert done.returncode == 0, done.stderr
    assert f"resuming at byte {offset} of {size}" in done.stderr
    patches = [head for head in relay.heads if head.startswith(b"PATCH ")]
    assert f"\r\nUpload-Offset: {offset}\r\n".encode() in patches[0]
    assert size - offset <= relay.up < size - offset + HEADS
    (file_id,) = file_ids(done.stdout).values()
    assert url.endswith(f"/uploads/{file_id}")
    assert stored(daemon, file_id) == data
    assert kept(tmp_path) == {url: True}


def status_of(daemon: Daemon, path: str) -> int:
    """The status of a GET without following a redirect."""
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=30)
    try:
        connection.request(
            "GET", path, headers={"Authorization": f"Bearer {daemon.token}"}
        )
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_killed_download_continues_with_a_range_from_the_storage_node(
    relay: Relay, tmp_path: Path
) -> None:
    """The download is redirected to the node (reached through the relay);
    killed while stalled there, run again it asks the node for the bytes
    from the partial file's size on, gets only those, and the file is the
    uploaded one, its sha256 checked."""
    node = start_node(
        tmp_path / "n1",
        "n1",
        options=(f"--http-public-url=http://127.0.0.1:{relay.port}",),
    )
    try:
        relay.upstream = node.ports["http"]
        with uploadd_with(tmp_path, {"n1": node}, "--cluster-replicas=1") as (
            daemon,
            _,
        ):
            login(tmp_path, daemon.base)
            size = 24 * MIB + 77
            data = make_file(work(tmp_path) / "source.bin", size)
            sent = uploadctl(tmp_path, "upload", "source.bin")
            assert sent.returncode == 0, sent.stderr
            (file_id,) = file_ids(sent.stdout).values()
            eventually(
                lambda: status_of(daemon, f"/files/{file_id}/content") == 302,
                what="the download is redirected to the node",
            )

            relay.reset()
            relay.down_budget = 6 * MIB
            part = work(tmp_path) / f"copy.bin.{file_id}.part"
            process = spawn(tmp_path, "download", file_id, "-o", "copy.bin")
            try:
                assert relay.stalled.wait(60), "the download never reached 6 MiB"
                eventually(
                    lambda: part.exists() and part.stat().st_size > 5 * MIB,
                    what="the partial file holds what came",
                )
            finally:
                kill(process)
                relay.drop()
            have = part.stat().st_size
            assert 0 < have < size

            relay.reset()
            done = uploadctl(tmp_path, "download", file_id, "-o", "copy.bin")
            assert done.returncode == 0, done.stderr
            assert f"resuming at byte {have} of {size}" in done.stderr
            assert f"\r\nRange: bytes={have}-\r\n".encode() in relay.heads[0]
            assert size - have <= relay.down < size - have + HEADS
            copy = work(tmp_path) / "copy.bin"
            assert hashlib.sha256(copy.read_bytes()).digest() == (
                hashlib.sha256(data).digest()
            )
            assert not part.exists()
    finally:
        node.stop()


def test_a_download_whose_bytes_do_not_hash_to_the_servers_is_refused(
    daemon: Daemon, tmp_path: Path
) -> None:
    """A partial file whose bytes are not the file's: the whole no longer
    matches the server's sha256, so nothing is saved under the name, the
    part is removed and the exit status is 1."""
    login(tmp_path, daemon.base)
    make_file(work(tmp_path) / "real.bin", MIB)
    sent = uploadctl(tmp_path, "upload", "real.bin")
    (file_id,) = file_ids(sent.stdout).values()
    make_file(work(tmp_path) / f"out.bin.{file_id}.part", 1000)
    done = uploadctl(tmp_path, "download", file_id, "-o", "out.bin")
    assert done.returncode == 1
    assert "resuming at byte 1000" in done.stderr
    assert "sha256" in done.stderr and "the partial file was removed" in done.stderr
    assert not (work(tmp_path) / "out.bin").exists()
    assert not (work(tmp_path) / f"out.bin.{file_id}.part").exists()
