"""uploadd listens where ``[http] endpoint`` says: here a UNIX socket,
answered over it with curl as over TCP."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import BIN, PASSWORD, ctl, stop_process, twistd

pytestmark = pytest.mark.integration


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for the socket (a UNIX socket path has ~108 bytes)."""
    made = Path(tempfile.mkdtemp(prefix="uploadd-", dir="/tmp"))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def curl(sock: Path, *args: str) -> tuple[int, bytes]:
    done = subprocess.run(
        ["curl", "-sS", "--unix-socket", str(sock), "-w", "\n%{http_code}", *args],
        capture_output=True,
        check=True,
        timeout=30,
    )
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), body


def test_uploadd_answers_on_a_unix_socket_endpoint(
    tmp_path: Path, socket_dir: Path
) -> None:
    """``--http-endpoint unix:PATH`` serves /health and uploads over the
    socket; <data_dir>/uploadd.port names the socket; SIGTERM exits 0."""
    data_dir = tmp_path / "uploadd"
    sock = socket_dir / "u.sock"
    ctl(data_dir, "user", "add", "alice", "--scope", "write", stdin=PASSWORD + "\n")
    token = ctl(data_dir, "token", "alice").strip()
    ready = data_dir / "uploadd.port"
    process = twistd(
        "uploadd",
        data_dir,
        ready,
        [f"--data-dir={data_dir}", f"--http-endpoint=unix:{sock}"],
    )
    try:
        assert ready.read_text() == f"{sock}\n"
        status, body = curl(sock, "http://uploadd/health")
        assert status == 200, body
        assert json.loads(body)["status"] == "ok"
        status, body = curl(
            sock,
            "-X",
            "PUT",
            "-H",
            f"Authorization: Bearer {token}",
            "--data-binary",
            "over a socket",
            "http://uploadd/files/note.txt",
        )
        assert status == 201, body
        assert json.loads(body)["size"] == len("over a socket")
        assert (
            f"uploadd listening on unix:{sock}" in (data_dir / "twistd.log").read_text()
        )
    finally:
        stop_process(process)
    assert process.returncode == 0


def test_a_taken_endpoint_exits_1_with_one_critical_line(tmp_path: Path) -> None:
    """uploadd whose endpoint is taken logs why (critical) and exits 1,
    after the store has been migrated and closed."""
    data_dir = tmp_path / "uploadd"
    data_dir.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                str(BIN / "twistd"),
                "--nodaemon",
                "--pidfile=",
                f"--logfile={data_dir / 'twistd.log'}",
                "uploadd",
                f"--data-dir={data_dir}",
                f"--http-endpoint=tcp:{port}:interface=127.0.0.1",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
    log = (data_dir / "twistd.log").read_text()
    assert done.returncode == 1, log
    critical = [line for line in log.splitlines() if "#critical]" in line]
    assert len(critical) == 1, log
    assert f"uploadd cannot start: Couldn't listen on 127.0.0.1:{port}" in critical[0]
    assert (data_dir / "uploadd.sqlite3").exists()
    assert not (data_dir / "uploadd.port").exists()
