"""A real `twistd -n uploadd` in a subprocess, on a port of its own choosing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

BIN = Path(sys.executable).parent
PASSWORD = "integration-password"


@attrs.define
class Daemon:
    data_dir: Path
    process: subprocess.Popen[bytes]
    port: int
    token: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_memory_kib(self) -> int:
        """VmHWM of the server process, from /proc."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1])

    def request(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request with this daemon's token; (status, headers, body)."""
        request = urllib.request.Request(
            self.base + path,
            data=body,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, method: str, path: str, **options: Any) -> Any:
        status, _, body = self.request(method, path, **options)
        assert status < 400, (status, body)
        return json.loads(body)

    def staged(self) -> list[Path]:
        return sorted((self.data_dir / "incoming").glob("*"))

    def log(self) -> str:
        path = self.data_dir / "twistd.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not gone within 15 s; wait for it."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def ctl(data_dir: Path, *args: str, stdin: str = "") -> str:
    """uploadctl on ``data_dir``, making its database if it is not there;
    it reads no config file (not even a ./uploadd.conf of the developer's)."""
    env = {**os.environ, "UPLOADD_DATA_DIR": str(data_dir)}
    env["UPLOADD_CONFIG"] = os.devnull
    done = subprocess.run(
        [str(BIN / "uploadctl"), "--create", *args],
        input=stdin.encode(),
        capture_output=True,
        env=env,
        check=True,
        timeout=60,
    )
    return done.stdout.decode()


def add_user(data_dir: Path, name: str, scope: str, password: str) -> str:
    """Create user ``name`` with ``scope`` (uploadctl); a bearer token for them."""
    ctl(data_dir, "user", "add", name, "--scope", scope, stdin=password + "\n")
    return ctl(data_dir, "token", name).strip()


def start(data_dir: Path, *options: str) -> Daemon:
    """Create user 'alice' (unless there), start uploadd on a free port, wait
    until it listens."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if "alice" not in ctl(data_dir, "user", "list"):
        ctl(data_dir, "user", "add", "alice", "--scope", "write", stdin=PASSWORD + "\n")
    (data_dir / "uploadd.port").unlink(missing_ok=True)
    token = ctl(data_dir, "token", "alice", "--ttl", "1h").strip()
    port_file = data_dir / "uploadd.port"
    process = twistd(
        "uploadd",
        data_dir,
        port_file,
        ["--port=0", f"--data-dir={data_dir}", *options],
    )
    return Daemon(data_dir, process, int(port_file.read_text()), token)


def twistd(
    plugin: str, data_dir: Path, ready: Path, options: list[str], search: bool = False
) -> subprocess.Popen[bytes]:
    """``twistd -n PLUGIN OPTIONS`` with a clean environment, once it has
    written ``ready`` (its port file); its log is ``data_dir/twistd.log``.
    uploadd reads no config file unless ``search`` lets it look for one
    (so a developer's ./uploadd.conf stays out of the tests)."""
    prefix = f"{plugin.upper()}_"
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
    if plugin == "uploadd" and not search:
        env["UPLOADD_CONFIG"] = os.devnull
    process = subprocess.Popen(
        [
            str(BIN / "twistd"),
            "--nodaemon",
            "--pidfile=",
            f"--logfile={data_dir / 'twistd.log'}",
            plugin,
            *options,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            errors = process.stderr.read() if process.stderr else b""
            raise RuntimeError(f"{plugin} did not start: {errors.decode()}")
        time.sleep(0.05)
    return process


def eventually(check: Callable[[], Any], within: float = 30, what: str = "") -> Any:
    """The first true answer of ``check()``, asked every 0.1 s (an exception
    counts as not yet); AssertionError naming ``what`` after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        try:
            found = check()
        except Exception:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.1)


class EventStream:
    """A user's ``GET /events`` on a raw socket, connected at once."""

    def __init__(self, port: int, token: str, last_event_id: int | None = None) -> None:
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=1)
        head = f"GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
        if last_event_id is not None:
            head += f"\r\nLast-Event-ID: {last_event_id}"
        self._sock.sendall(head.encode() + b"\r\n\r\n")
        #: The id of the last message read.
        self.last_id: int | None = None

    def messages(self, within: float) -> Iterator[tuple[str, dict[str, Any], float]]:
        """(topic, data, when it arrived) for each event, for ``within`` s or
        until the stream closes."""
        deadline, buffer = time.monotonic() + within, b""
        while time.monotonic() < deadline:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return  # closed here
            if not chunk:
                return
            arrived, buffer = time.monotonic(), buffer + chunk
            while b"\n\n" in buffer:
                message, buffer = buffer.split(b"\n\n", 1)
                fields = dict(
                    line.split(": ", 1)
                    for line in message.decode().split("\n")
                    if line.startswith(("event: ", "data: ", "id: "))
                )
                if "event" in fields and "data" in fields:
                    self.last_id = int(fields["id"]) if "id" in fields else None
                    yield fields["event"], json.loads(fields["data"]), arrived

    def close(self) -> None:
        self._sock.close()
