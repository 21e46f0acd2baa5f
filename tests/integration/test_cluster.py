"""uploadd with three real nodes: replicas verified on two, downloads
redirected with ranges, a node's death noticed while downloads go on;
uploads at once onto a nearly full node."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from noded.signing import signed_query, url_key
from tests.integration.daemon import Daemon, add_user, eventually, start
from tests.integration.test_noded import SECRET, RunningNode, fetch, start_node

pytestmark = pytest.mark.integration
PING = 0.5


@contextlib.contextmanager
def uploadd_with(
    tmp_path: Path, nodes: dict[str, RunningNode], *options: str
) -> Iterator[tuple[Daemon, str]]:
    """uploadd pinging ``nodes`` every PING, and an admin token; stopped after."""
    seeds = ",".join(
        f"{name}=127.0.0.1:{node.ports['amp']}" for name, node in nodes.items()
    )
    daemon = start(
        tmp_path / "uploadd",
        f"--cluster-secret={SECRET}",
        f"--cluster-nodes={seeds}",
        f"--cluster-ping-interval={PING}s",
        f"--cluster-ping-timeout={PING}s",
        *options,
    )
    try:
        yield daemon, add_user(daemon.data_dir, "root", "admin", "root-password")
    finally:
        daemon.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Daemon, dict[str, RunningNode], str]]:
    nodes: dict[str, RunningNode] = {}
    try:
        for index in (1, 2, 3):
            nodes[f"n{index}"] = start_node(
                tmp_path / f"n{index}", f"n{index}", f"z{index}"
            )
        with uploadd_with(
            tmp_path,
            nodes,
            "--cluster-replicas=2",
            "--cluster-repair-after=2s",
            "--cluster-repair-interval=1s",
        ) as (daemon, admin):
            yield daemon, nodes, admin
    finally:
        for node in nodes.values():
            node.stop()


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` (the tests run as root),
    unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        check=True,
        timeout=30,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True, timeout=30)


def node_table(daemon: Daemon, admin: str) -> dict[str, dict[str, Any]]:
    status, _, body = daemon.request(
        "GET", "/admin/nodes", Authorization=f"Bearer {admin}"
    )
    assert status == 200, body
    return {node["id"]: node for node in json.loads(body)["results"]}


def curl_range(daemon: Daemon, path: str, first: int, last: int) -> tuple[bytes, str]:
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-L",
            "--fail",
            "-H",
            f"Authorization: Bearer {daemon.token}",
            "--range",
            f"{first}-{last}",
            "-w",
            "%{url_effective}",
            "-o",
            "-",
            daemon.base + path,
        ],
        capture_output=True,
        check=True,
        timeout=60,
    )
    body, url = (
        done.stdout[: last - first + 1],
        done.stdout[last - first + 1 :].decode(),
    )
    return body, url


def test_replicas_redirects_and_a_dead_node(
    cluster: tuple[Daemon, dict[str, RunningNode], str],
) -> None:
    daemon, nodes, admin = cluster
    eventually(
        lambda: all(n["health"] == "up" for n in node_table(daemon, admin).values()),
        10,
        "all nodes UP",
    )
    data = os.urandom(50 * 1024 * 1024)
    status, _, body = daemon.request("PUT", "/files/movie.bin", data)
    assert status == 201
    file_id = json.loads(body)["id"]
    holders = eventually(
        lambda: (
            (r := daemon.json("GET", f"/files/{file_id}")["replicas"])
            and len(r) == 2
            and r
        ),
        60,
        "two verified replicas",
    )
    local = daemon.data_dir / "files" / file_id[:2] / file_id
    eventually(lambda: not local.exists(), 10, "the local copy removed")
    # Each verified copy was announced, in the same transaction as its record.
    with sqlite3.connect(daemon.data_dir / "uploadd.sqlite3") as db:
        announced = db.execute(
            "SELECT payload FROM events WHERE topic = 'file.replicated'"
        ).fetchall()
    assert sorted(json.loads(p)["node_id"] for (p,) in announced) == sorted(holders)
    for name in holders:
        held = nodes[name].data_dir / "files" / file_id[:2] / file_id
        assert (
            hashlib.sha256(held.read_bytes()).hexdigest()
            == hashlib.sha256(data).hexdigest()
        )

    part, url = curl_range(daemon, f"/files/{file_id}/content", 1_000_000, 1_999_999)
    assert part == data[1_000_000:2_000_000]
    serving = next(n for n in holders if f":{nodes[n].ports['http']}/" in url)
    assert "sig=" in url

    assert fetch(url.replace("sig=", "sig=0"))[0] == 403
    expired = signed_query(
        url_key(SECRET.encode()), file_id, int(time.time()) - 1, "m", "x/y"
    )
    node_url = url.split("?")[0]
    assert fetch(f"{node_url}?{expired}")[0] == 403

    victim = nodes[serving]
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(10)
    killed_at = time.monotonic()
    eventually(
        lambda: node_table(daemon, admin)[serving]["health"] == "down",
        3 * PING + PING + 2,
        "the killed node DOWN",
    )
    assert time.monotonic() - killed_at <= 3 * PING + PING + 2
    part, url = curl_range(daemon, f"/storage/download/{file_id}/", 0, 99_999)
    assert part == data[:100_000]
    assert f":{victim.ports['http']}/" not in url

    # Past repair_after the lost copy is made again on the third node.
    spare = next(name for name in nodes if name not in holders)
    eventually(
        lambda: spare in daemon.json("GET", f"/files/{file_id}")["replicas"],
        30,
        "the copy restored on the spare node",
    )
    held = nodes[spare].data_dir / "files" / file_id[:2] / file_id
    assert (
        hashlib.sha256(held.read_bytes()).hexdigest()
        == hashlib.sha256(data).hexdigest()
    )
    part, _ = curl_range(daemon, f"/files/{file_id}/content", 49_000_000, 49_999_999)
    assert part == data[49_000_000:50_000_000]

    # The dead node comes back: it is audited, and the now surplus copy goes.
    nodes[serving] = start_node(
        victim.data_dir, serving, victim.data_dir.name, victim.ports
    )
    eventually(
        lambda: node_table(daemon, admin)[serving]["health"] == "up",
        10,
        "the node back UP",
    )
    eventually(
        lambda: (
            len(daemon.json("GET", f"/files/{file_id}")["replicas"]) == 2
            and sum(
                (n.data_dir / "files" / file_id[:2] / file_id).exists()
                for n in nodes.values()
            )
            == 2
        ),
        30,
        "back to exactly two copies",
    )


MIB = 1024 * 1024


def test_uploads_at_once_never_push_a_node_below_its_reserve(tmp_path: Path) -> None:
    """20 files of 4 MiB stored at once, 3 copies each, onto a node with
    24 MiB of room above its reserve (a 40 MiB tmpfs, reserve 16 MiB) and two
    roomy nodes: the tight node takes what fits and stays at or above its
    reserve, no rsync fails, and both roomy nodes hold every file."""
    nodes: dict[str, RunningNode] = {}
    with tmpfs(tmp_path / "tight" / "files", "40m") as tight_files:
        try:
            nodes["tight"] = start_node(tmp_path / "tight", "tight", reserve="16M")
            for name in ("roomy1", "roomy2"):
                nodes[name] = start_node(tmp_path / name, name)
            with uploadd_with(tmp_path, nodes, "--cluster-replicas=3") as (
                daemon,
                admin,
            ):
                eventually(
                    lambda: all(
                        n["health"] == "up" for n in node_table(daemon, admin).values()
                    ),
                    10,
                    "all nodes UP",
                )

                def upload(index: int) -> str:
                    data = os.urandom(4 * MIB)
                    status, _, body = daemon.request("PUT", f"/files/f{index}", data)
                    assert status == 201, body
                    file_id: str = json.loads(body)["id"]
                    return file_id

                with ThreadPoolExecutor(20) as pool:
                    ids = list(pool.map(upload, range(20)))
                eventually(
                    lambda: all(
                        {"roomy1", "roomy2"}
                        <= set(daemon.json("GET", f"/files/{i}")["replicas"])
                        for i in ids
                    ),
                    90,
                    "every file on both roomy nodes",
                )
                eventually(
                    lambda: all(
                        n.get("in_flight", 0) == 0
                        for n in node_table(daemon, admin).values()
                    ),
                    30,
                    "no copy on its way",
                )
                space = os.statvfs(tight_files)
                free = space.f_bavail * space.f_frsize
                held = [p for p in tight_files.rglob("*") if p.is_file()]
                failed = [
                    line
                    for line in daemon.log().splitlines()
                    if "copy of" in line and "failed" in line
                ]
                assert free >= 16 * MIB, (free, len(held))
                assert failed == []
                assert 1 <= len(held) <= 6
                assert node_table(daemon, admin)["tight"]["replicas"] == len(held)
        finally:
            for node in nodes.values():
                node.stop()
