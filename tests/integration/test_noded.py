"""A real `twistd -n noded`: rsync pushes into its daemon, AMP over TCP, signed
downloads over HTTP, and its rsync daemon restarted when it dies."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import pytest_twisted

from noded import rsync
from noded.client import connect
from noded.protocol import Ping, Stat
from noded.signing import signed_query, url_key
from tests.integration.daemon import stop_process, twistd

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
SECRET = "s" * 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@attrs.define
class RunningNode:
    data_dir: Path
    process: subprocess.Popen[bytes]
    ports: dict[str, int]

    def stop(self) -> None:
        stop_process(self.process)
        # A node killed with SIGKILL could not stop its rsync daemon: stop it
        # by pid, and make sure it is gone (a zombie awaiting its reaper is).
        deadline = time.monotonic() + 10
        while (orphan := self.rsyncd_pid()) is not None and running(orphan):
            if time.monotonic() > deadline:
                raise AssertionError(f"rsync daemon {orphan} outlived its node")
            late = time.monotonic() > deadline - 5
            os.kill(orphan, signal.SIGKILL if late else signal.SIGTERM)
            time.sleep(0.2)

    def rsyncd_pid(self) -> int | None:
        """The live rsync daemon of this node, if any."""
        found = subprocess.run(
            ["pgrep", "-f", f"rsync --daemon.*config={self.data_dir.resolve()}/"],
            capture_output=True,
            check=False,
        )
        pids = [int(p) for p in found.stdout.split() if running(int(p))]
        return pids[0] if pids else None


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def start_node(
    data_dir: Path,
    node_id: str,
    zone: str = "",
    ports: dict[str, int] | None = None,
    reserve: str = "1M",
    options: tuple[str, ...] = (),
) -> RunningNode:
    """A noded on loopback; ``ports`` (from an earlier run) to come back on
    the same AMP and rsync ports; below ``reserve`` free it takes nothing;
    ``options`` go to twistd noded as they are."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "noded.ports").unlink(missing_ok=True)
    amp_port = ports["amp"] if ports else 0
    rsync_port = ports["rsync"] if ports else free_port()
    ports_file = data_dir / "noded.ports"
    process = twistd(
        "noded",
        data_dir,
        ports_file,
        [
            f"--node-id={node_id}",
            f"--zone={zone}",
            f"--data-dir={data_dir}",
            f"--cluster-secret={SECRET}",
            f"--node-reserve={reserve}",
            f"--amp-port={amp_port}",
            "--http-port=0",
            f"--rsync-port={rsync_port}",
            *options,
        ],
    )
    node = RunningNode(data_dir, process, json.loads(ports_file.read_text()))
    wait_for_rsyncd(node)
    return node


def wait_for_rsyncd(node: RunningNode, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(
                ("127.0.0.1", node.ports["rsync"]), timeout=1
            ):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the rsync daemon did not start")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RunningNode]:
    running = start_node(tmp_path / "node", "n1", "z1")
    try:
        yield running
    finally:
        running.stop()


def push(node: RunningNode, source: Path, file_id: str, secret: str = SECRET) -> int:
    password_file = rsync.write_password_file(source.parent / "pw", secret.encode())
    args = rsync.push_args(
        "rsync", source, "127.0.0.1", node.ports["rsync"], file_id, password_file, 30, 5
    )
    return subprocess.run(args, capture_output=True, timeout=60, check=False).returncode


@pytest_twisted.ensureDeferred()
async def test_a_pushed_replica_is_held_verified_and_served(
    node: RunningNode, tmp_path: Path
) -> None:
    """rsync into the daemon lands the file; AMP Ping and Stat (with the
    secret) describe it; a signed URL downloads it, a tampered one is 403."""
    from twisted.internet import reactor

    data = os.urandom(3 * 1024 * 1024)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    file_id = "0f" * 16
    assert push(node, source, file_id) == 0
    assert push(node, source, "1f" * 16, secret="w" * 40) == 5  # wrong password
    protocol = await connect(reactor, "127.0.0.1", node.ports["amp"], SECRET.encode())
    try:
        ping = await protocol.callRemote(Ping)
        assert (ping["node_id"], ping["zone"], ping["state"]) == ("n1", "z1", "up")
        assert ping["rsync_port"] == node.ports["rsync"]
        held = await protocol.callRemote(Stat, file_id=file_id)
        assert held == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    finally:
        protocol.transport.loseConnection()  # type: ignore[union-attr]
    key = url_key(SECRET.encode())
    query = signed_query(key, file_id, int(time.time()) + 60, "clip.bin", "video/mp4")
    url = f"{ping['http_url']}/files/{file_id}?{query}"
    assert fetch(url, Range="bytes=100-199") == (206, data[100:200])
    assert fetch(url.replace("clip", "clap"))[0] == 403


def fetch(url: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_download_asked_for_its_digest_answers_the_whole_files(
    node: RunningNode, tmp_path: Path
) -> None:
    """From a real node, a download through a URL signed with the file's
    sha256 and asked with Want-Repr-Digest carries the Repr-Digest of the
    whole file, for a byte range too; without the ask it carries none."""
    data = os.urandom(256 * 1024)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    file_id = "2f" * 16
    assert push(node, source, file_id) == 0
    key = url_key(SECRET.encode())
    sha = hashlib.sha256(data)
    query = signed_query(
        key, file_id, int(time.time()) + 60, "d.bin", "x/y", sha.hexdigest()
    )
    url = f"http://127.0.0.1:{node.ports['http']}/files/{file_id}?{query}"
    expected = "sha-256=:" + base64.b64encode(sha.digest()).decode() + ":"

    def digest_of(**headers: str) -> tuple[int, str | None]:
        request = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status, response.headers["Repr-Digest"]

    want = {"Want-Repr-Digest": "sha-512=10, sha-256=1"}
    assert digest_of(**want) == (200, expected)
    assert digest_of(Range="bytes=100-199", **want) == (206, expected)
    assert digest_of() == (200, None)


@pytest_twisted.ensureDeferred()
async def test_a_wrong_cluster_secret_gets_nothing(node: RunningNode) -> None:
    from twisted.internet import reactor

    with pytest.raises(
        Exception, match=r"UNAUTHORIZED|wrong cluster secret|Connection"
    ):
        await connect(reactor, "127.0.0.1", node.ports["amp"], b"x" * 40)


def test_a_dead_rsync_daemon_is_restarted(node: RunningNode, tmp_path: Path) -> None:
    """Killing the node's rsync daemon brings up a new one that takes pushes."""
    first = node.rsyncd_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        again = node.rsyncd_pid()
        if again is not None and again != first:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("rsyncd was not restarted")
    wait_for_rsyncd(node)
    source = tmp_path / "after.bin"
    source.write_bytes(b"after the restart")
    assert push(node, source, "2f" * 16) == 0
