"""Bodies read by the writer threads from the socket, and the memory budget,
against a real `twistd uploadd`: bursts, a request right behind a body, many
queued bodies at once under a small budget."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemon, start
from tests.integration.test_daemon import blocks, head, read_response
from tests.integration.wire import Stream

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


def test_a_body_in_bursts_and_the_request_behind_it(daemon: Daemon) -> None:
    """A body whose client pauses between bursts (the socket runs dry while
    the writer threads read it) is stored whole, and a request sent right
    behind its last byte on the same connection is answered after it."""
    size = 6 * MIB + 12345
    digest = hashlib.sha256()
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        sock.sendall(head(daemon, "/files/bursts.bin", Content_Length=str(size)))
        sent = 0
        body = b"".join(blocks(size, seed=7))
        digest.update(body)
        while sent < size - 100_000:
            piece = body[sent : sent + 100_000]
            sock.sendall(piece)
            sent += len(piece)
            if sent % (10 * 100_000) == 0:
                time.sleep(0.05)
        behind = (
            f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{daemon.port}\r\n\r\n".encode()
        )
        sock.sendall(body[sent:] + behind)
        answers = Stream(sock)
        first = answers.exchange(time.monotonic()).final
        assert first.status == 201, first
        stored = json.loads(first.body)
        assert (stored["size"], stored["sha256"]) == (size, digest.hexdigest())
        second = answers.exchange(time.monotonic()).final
        assert second.status == 200, second
        assert json.loads(second.body)["status"] == "ok"
    health = daemon.json("GET", "/health")
    assert (health["uploads_in_flight"], health["ingest_held_bytes"]) == (0, 0)
    path = daemon.data_dir / "files" / stored["id"][:2] / stored["id"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest.hexdigest()


@pytest.fixture
def squeezed(tmp_path: Path) -> Iterator[Daemon]:
    """An uploadd whose bodies queue (md5 runs beside sha256) under a memory
    budget smaller than two bodies' high water."""
    daemon = start(
        tmp_path / "data",
        "--storage-digests=sha256, md5",
        "--ingest-memory-budget=2M",
        "--ingest-high-water=1536K",
        "--ingest-low-water=256K",
    )
    try:
        yield daemon
    finally:
        daemon.stop()


def test_many_bodies_at_once_share_a_small_budget(squeezed: Daemon) -> None:
    """Twelve 8 MiB bodies at once under a 2 MiB budget: reading stops and
    starts again as writes catch up, every body arrives with the right sums,
    and afterwards nothing is held and nothing is in flight."""
    results: dict[int, tuple[int, dict[str, object], str, str]] = {}

    def put(number: int) -> None:
        size = 8 * MIB + number
        sha256, md5 = hashlib.sha256(), hashlib.md5()
        with socket.create_connection(("127.0.0.1", squeezed.port)) as sock:
            path = f"/files/many-{number}.bin"
            sock.sendall(head(squeezed, path, Content_Length=str(size)))
            for block in blocks(size, seed=number):
                sha256.update(block)
                md5.update(block)
                sock.sendall(block)
            status, answer = read_response(sock)
        results[number] = (
            status,
            json.loads(answer),
            sha256.hexdigest(),
            md5.hexdigest(),
        )

    threads = [threading.Thread(target=put, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(results) == list(range(12))
    for number, (status, stored, sha256, md5) in results.items():
        assert status == 201, stored
        assert (stored["size"], stored["sha256"], stored["md5"]) == (
            8 * MIB + number,
            sha256,
            md5,
        )
    health = squeezed.json("GET", "/health")
    assert (health["uploads_in_flight"], health["ingest_held_bytes"]) == (0, 0)


def test_a_chunk_longer_than_its_range_leaves_the_other_chunks_alone(
    daemon: Daemon,
) -> None:
    """A Content-Range chunk whose body is longer than its range is refused
    (413) without writing past its range: the chunk already stored after it
    keeps its bytes, and the upload completes to the right file."""
    total, piece = 2 * MIB, MIB // 2
    whole = b"".join(blocks(total, seed=11))

    def put(path: str, first: int, body: bytes, last: int | None = None) -> str:
        last = first + len(body) - 1 if last is None else last
        status, _, answer = daemon.request(
            "PUT",
            path,
            body,
            **{
                "Content-Range": f"bytes {first}-{last}/{total}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert status in (200, 201), answer
        return json.loads(answer)["id"]  # type: ignore[no-any-return]

    # The third quarter first: out of order, so read directly.
    upload = put("/storage/tmp-upload/", 2 * piece, whole[2 * piece : 3 * piece])
    path = f"/storage/tmp-upload/{upload}/"
    # The second quarter's range, with three quarters of body behind it:
    # any byte past its range would land on the third quarter.
    with socket.create_connection(("127.0.0.1", daemon.port)) as sock:
        over = b"Z" * (3 * piece)
        sock.sendall(
            head(
                daemon,
                path,
                Content_Range=f"bytes {piece}-{2 * piece - 1}/{total}",
                Content_Type="application/octet-stream",
                Content_Length=str(len(over)),
            )
        )

        def send() -> None:
            with contextlib.suppress(OSError):
                sock.sendall(over)

        sender = threading.Thread(target=send)
        sender.start()
        status, _ = read_response(sock)
        sender.join(10)
    assert status == 413
    for first in (0, piece, 3 * piece):
        put(path, first, whole[first : first + piece])
    done = daemon.json("POST", path)
    assert done["status"] == 2, done  # complete
    assert (done["size"], done["sha256"]) == (total, hashlib.sha256(whole).hexdigest())
