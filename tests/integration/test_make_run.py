"""scripts/run (``make run``) on ports the test chooses: two runs side by
side each use their own node, and a run whose node cannot take its port
stops with the node's reason rather than saying it runs."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import urllib.parse
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.integration.broker import free_port
from tests.integration.daemon import BIN, eventually

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run"
PORTS = ("PORT", "NODE_AMP_PORT", "NODE_RSYNC_PORT", "NODE_HTTP_PORT")


def start_run(var: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    """scripts/run with its data in ``var`` and these ports; its output in
    ``var/run.out`` and ``var/run.err``."""
    var.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("UPLOADD_", "NODED_")) and key not in PORTS
    }
    env.update({"BIN": str(BIN), "VAR": str(var)})
    env.update({name: str(port) for name, port in ports.items()})
    with (var / "run.out").open("wb") as out, (var / "run.err").open("wb") as err:
        return subprocess.Popen(
            [str(SCRIPT)], env=env, stdout=out, stderr=err, start_new_session=True
        )


def stop_run(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the script (it stops what it started); its whole session
    is killed if it has not ended within 60 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def said(var: Path) -> list[str]:
    """The script's own lines ("run: ...") on standard output."""
    text = (var / "run.out").read_text(errors="replace")
    return [line for line in text.splitlines() if line.startswith("run: ")]


def started(var: Path) -> bool:
    """Whether the run in ``var`` has said that uploadd runs."""
    return any(line.startswith("run: uploadd (pid") for line in said(var))


def running_under(var: Path) -> list[str]:
    """Processes of ours still running with ``var`` on their command line."""
    found = subprocess.run(
        ["pgrep", "-af", str(var)], capture_output=True, text=True, check=False
    )
    return [line for line in found.stdout.splitlines() if "pgrep" not in line]


def request(
    port: int, method: str, path: str, body: bytes = b"", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    """One request to 127.0.0.1:``port``, redirects not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def upload_and_locate(var: Path, port: int) -> str:
    """Sign in as the run's admin, upload a file and return where its
    download is redirected once a node holds it."""
    password = (var / "uploadd" / "admin-password").read_text().strip()
    form = urllib.parse.urlencode({"username": "admin", "password": password})
    status, _, body = request(
        port,
        "POST",
        "/auth/token",
        form.encode(),
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200, body
    bearer = f"Bearer {json.loads(body)['token']}"
    status, _, body = request(
        port, "PUT", "/files/hello.txt", b"hello", Authorization=bearer
    )
    assert status == 201, body
    content = f"/files/{json.loads(body)['id']}/content"

    def redirected() -> str | None:
        status, headers, _ = request(port, "GET", content, Authorization=bearer)
        return headers.get("Location") if status == 302 else None

    location: str = eventually(redirected, within=60, what="a copy on the node")
    return location


@pytest.fixture
def runs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            stop_run(process)


def test_two_runs_side_by_side_each_use_the_node_they_started(
    tmp_path: Path, runs: list[subprocess.Popen[bytes]]
) -> None:
    """Two runs with their own VAR and ports both start, each saying so
    with its own ports; an upload to each is copied to that run's node and
    its download redirected to that node's port. SIGTERM stops everything
    each started."""
    setups = {
        tmp_path / "a": {name: free_port() for name in PORTS},
        tmp_path / "b": {name: free_port() for name in PORTS},
    }
    for var, ports in setups.items():
        runs.append(start_run(var, ports))
    for var, ports in setups.items():
        eventually(partial(started, var), within=90, what=f"{var.name} started")
        node, uploadd = said(var)
        assert node.startswith("run: storage node 'local' (pid ")
        assert (
            f"AMP {ports['NODE_AMP_PORT']}, rsync {ports['NODE_RSYNC_PORT']},"
            f" downloads {ports['NODE_HTTP_PORT']}"
        ) in node
        assert f"http://127.0.0.1:{ports['PORT']}/" in uploadd
    for var, ports in setups.items():
        location = upload_and_locate(var, ports["PORT"])
        assert location.startswith(f"http://127.0.0.1:{ports['NODE_HTTP_PORT']}/")
    for process in runs:
        stop_run(process)
        assert process.returncode == 143
    for var in setups:
        assert running_under(var) == []


@pytest.mark.parametrize(
    ("taken", "reason"),
    [
        (
            "NODE_AMP_PORT",
            "noded cannot start: Couldn't listen on 127.0.0.1:{port}:"
            " [Errno 98] Address already in use.",
        ),
        ("NODE_RSYNC_PORT", "unable to bind any inbound sockets on port {port}"),
        (
            "NODE_HTTP_PORT",
            "noded cannot start: Couldn't listen on 127.0.0.1:{port}:"
            " [Errno 98] Address already in use.",
        ),
    ],
)
def test_a_run_whose_node_cannot_take_its_port_stops_with_the_reason(
    tmp_path: Path, runs: list[subprocess.Popen[bytes]], taken: str, reason: str
) -> None:
    """A port bound by someone else but not listening passes the check
    before the start (nothing answers there), so the node itself finds it
    taken: the run stops with status 1, prints the node's own reason from
    its log, never says it runs, and leaves nothing running."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        ports = {name: free_port() for name in PORTS} | {taken: port}
        var = tmp_path / "var"
        runs.append(start_run(var, ports))
        assert runs[0].wait(60) == 1
    errors = (var / "run.err").read_text()
    assert errors.startswith("run: the storage node did not start"), errors
    assert reason.format(port=port) in errors
    assert f"(log: {var}/noded.log)" in errors
    assert said(var) == []
    assert running_under(var) == []


def test_a_run_on_a_port_in_use_stops_before_starting_anything(
    tmp_path: Path, runs: list[subprocess.Popen[bytes]]
) -> None:
    """A port something listens on already is named, with the variable to
    change, before anything starts."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        var = tmp_path / "var"
        runs.append(start_run(var, {"PORT": port}))
        assert runs[0].wait(30) == 1
    assert (var / "run.err").read_text() == (
        f"run: port {port} (PORT) is in use (another make run?): set PORT to"
        " another port, or 0 for a free one\n"
    )
    assert not (var / "noded.log").exists()
