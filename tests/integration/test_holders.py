"""Resumable uploads through any of several instances: two real `twistd
uploadd` on one PostgreSQL, each request sent to either. The instance that
opened an upload holds its bytes; the other streams requests for it there."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.integration.daemon import Daemon, ctl, eventually, start
from tests.integration.wire import (
    Answer,
    ask,
    converse,
    hold,
    read_answer,
    request_head,
)
from tests.postgres import empty_tables

pytestmark = pytest.mark.integration

MIB = 1 << 20
SECRET = "holders-test-secret-of-enough-length-0123456789"


class Pair:
    """Instances ``a`` and ``b`` on one database; either restarts as it was."""

    def __init__(self, base: Path, url: str) -> None:
        self.base, self.url = base, url
        self.daemons: dict[str, Daemon] = {}

    def options(self, name: str) -> list[str]:
        return [
            f"--database-url={self.url}",
            f"--auth-secret={SECRET}",
            f"--cluster-secret={SECRET}",
            f"--cluster-instance={name}",
            "--uploads-checkpoint=1M",
        ]

    def start(self, name: str) -> Daemon:
        self.daemons[name] = start(self.base / name, *self.options(name))
        return self.daemons[name]

    def ctl(self, *args: str) -> str:
        return ctl(self.base / "a", *args)

    def stop(self) -> None:
        for daemon in self.daemons.values():
            daemon.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Pair]:
    with pytest.MonkeyPatch.context() as env:
        # uploadctl (run by the fixtures) reads these; twistd gets options.
        env.setenv("UPLOADD_DATABASE_URL", postgres_url)
        env.setenv("UPLOADD_AUTH_SECRET", SECRET)
        instances = Pair(tmp_path_factory.mktemp("holders"), postgres_url)
        try:
            instances.start("a")
            instances.start("b")
            yield instances
        finally:
            instances.stop()
            empty_tables(postgres_url)


def tus(daemon: Daemon, **headers: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {daemon.token}",
        "Tus-Resumable": "1.0.0",
        **headers,
    }


def create(daemon: Daemon, length: int) -> str:
    answer = ask(
        daemon.port, "POST", "/uploads/", tus(daemon, Upload_Length=str(length))
    )
    assert answer.status == 201, answer.body
    location = answer.header("location")
    assert location is not None
    return "/uploads/" + location.rsplit("/", 1)[1]


def patch(daemon: Daemon, path: str, offset: int, body: bytes) -> Answer:
    headers = tus(
        daemon,
        Upload_Offset=str(offset),
        Content_Type="application/offset+octet-stream",
    )
    return ask(daemon.port, "PATCH", path, headers, body)


def offset_at(daemon: Daemon, path: str) -> int:
    answer = ask(daemon.port, "HEAD", path, tus(daemon))
    assert answer.status == 200, answer
    return int(answer.header("upload-offset") or -1)


def in_flight(daemon: Daemon) -> int:
    return int(daemon.json("GET", "/health")["uploads_in_flight"])


def test_chunks_through_either_instance_make_one_upload(pair: Pair) -> None:
    """A tus upload opened on a continues chunk by chunk through b and a
    alike; HEAD through either tells the same offset; the file is whole."""
    a, b = pair.daemons["a"], pair.daemons["b"]
    data = os.urandom(4 * MIB)
    path = create(a, len(data))
    for number, at in enumerate(range(0, len(data), MIB)):
        through = b if number % 2 == 0 else a
        answer = patch(through, path, at, data[at : at + MIB])
        assert answer.status == 204, answer
        assert answer.header("upload-offset") == str(at + MIB)
        assert answer.header("tus-resumable") == "1.0.0"
        if at + MIB < len(data):
            assert offset_at(a, path) == offset_at(b, path) == at + MIB
    file_id = path.rsplit("/", 1)[1]
    record = a.json("GET", f"/files/{file_id}")
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert "forwarding" not in a.log()
    assert in_flight(a) == in_flight(b) == 0


def test_a_large_body_streams_through_without_being_buffered(pair: Pair) -> None:
    """A 64 MiB PATCH through b reaches a as it arrives: b's peak memory
    grows by far less than the body."""
    a, b = pair.daemons["a"], pair.daemons["b"]
    size = 64 * MIB
    path = create(a, size)
    before = b.peak_memory_kib()
    block = os.urandom(MIB)
    with socket.create_connection(("127.0.0.1", b.port), timeout=60) as sock:
        started = time.monotonic()
        headers = tus(
            b,
            Upload_Offset="0",
            Content_Type="application/offset+octet-stream",
            Content_Length=str(size),
        )
        sock.sendall(request_head("PATCH", path, headers))
        for _ in range(size // MIB):
            sock.sendall(block)
        answer = read_answer(sock, started)
    assert answer.status == 204, answer
    assert answer.header("upload-offset") == str(size)
    grew = b.peak_memory_kib() - before
    assert grew < 16 * 1024, f"b's peak memory grew by {grew} KiB"
    record = a.json("GET", "/files/" + path.rsplit("/", 1)[1])
    assert record["sha256"] == hashlib.sha256(block * (size // MIB)).hexdigest()


def test_one_writer_per_upload_across_instances(pair: Pair) -> None:
    """While a PATCH streams into a, a second PATCH through b is 423 (the
    holder's lock); a client that leaves mid-body through b keeps what
    reached a, and every slot is free again."""
    a, b = pair.daemons["a"], pair.daemons["b"]
    path = create(a, 8 * MIB)
    headers = tus(
        a,
        Upload_Offset="0",
        Content_Type="application/offset+octet-stream",
        Content_Length=str(8 * MIB),
    )
    with socket.create_connection(("127.0.0.1", a.port), timeout=10) as first:
        first.sendall(request_head("PATCH", path, headers) + b"x" * (2 * MIB))
        eventually(lambda: in_flight(a) == 1, what="the first PATCH under way")
        second = patch(b, path, 0, b"y" * MIB)
        assert second.status == 423, second
        assert second.problem, second
    # What reached a's disk is kept (recorded once the body is cut): up to
    # the 2 MiB sent, as much as the kernel delivered before the close.
    upload_id = path.rsplit("/", 1)[1]
    eventually(
        lambda: f"upload {upload_id} interrupted at" in a.log(),
        what="the interrupted PATCH recorded",
    )
    kept = offset_at(b, path)
    assert 0 < kept <= 2 * MIB
    # A client that leaves mid-body through b: a keeps what reached it.
    headers["Upload_Offset"] = str(kept)
    headers["Content_Length"] = str(8 * MIB - kept)
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as leaving:
        leaving.sendall(request_head("PATCH", path, headers) + b"z" * (3 * MIB))
        eventually(lambda: in_flight(a) == 1, what="the forwarded PATCH at a")
    eventually(lambda: in_flight(a) == in_flight(b) == 0, what="slots released")
    eventually(lambda: offset_at(a, path) > kept, what="what reached a is kept")


def test_the_holder_down_is_503_and_the_upload_resumes_once_it_is_back(
    pair: Pair,
) -> None:
    """kill -9 the holder: through b, HEAD and PATCH are 503 with
    Retry-After naming it; once it restarts the client resumes there."""
    a, b = pair.daemons["a"], pair.daemons["b"]
    data = os.urandom(2 * MIB)
    path = create(a, len(data))
    assert patch(b, path, 0, data[:MIB]).status == 204
    os.kill(a.process.pid, signal.SIGKILL)
    a.process.wait()
    down = patch(b, path, MIB, data[MIB:])
    assert down.status == 503, down
    assert down.problem and "(a)" in down.json()["detail"]
    assert int(down.header("retry-after") or 0) > 0
    assert b.request("HEAD", path, None, **{"Tus-Resumable": "1.0.0"})[0] == 503
    a = pair.start("a")
    assert offset_at(b, path) == MIB
    assert patch(b, path, MIB, data[MIB:]).status == 204
    record = b.json("GET", "/files/" + path.rsplit("/", 1)[1])
    assert record["sha256"] == hashlib.sha256(data).hexdigest()


def test_content_range_chunks_through_either_instance(pair: Pair) -> None:
    """Content-Range chunks (the storage API) alternate instances too."""
    a, b = pair.daemons["a"], pair.daemons["b"]
    data = os.urandom(3 * MIB)
    auth = {"Authorization": f"Bearer {a.token}"}
    first = ask(
        a.port,
        "PUT",
        "/storage/tmp-upload/",
        {**auth, "Content-Range": f"bytes 0-{MIB - 1}/{len(data)}"},
        data[:MIB],
    )
    assert first.status == 200, first
    upload_id = first.json()["id"]
    for at, through in ((2 * MIB, b), (MIB, a)):
        answer = ask(
            through.port,
            "PUT",
            f"/storage/tmp-upload/{upload_id}/",
            {**auth, "Content-Range": f"bytes {at}-{at + MIB - 1}/{len(data)}"},
            data[at : at + MIB],
        )
        assert answer.status == 200, answer
    done = ask(b.port, "POST", f"/storage/tmp-upload/{upload_id}/", auth)
    assert done.status == 200, done
    assert done.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_final_upload_joins_parts_held_by_either_instance(pair: Pair) -> None:
    """tus concatenation where the load balancer put the partial uploads on
    different instances: the final upload on a brings b's part over, the
    file is whole, and b's copy of the part is gone."""
    a, b = pair.daemons["a"], pair.daemons["b"]
    halves = [os.urandom(MIB + 17), os.urandom(2 * MIB)]
    paths = []
    for opened_on, continued_on, data in ((a, b, halves[0]), (b, a, halves[1])):
        created = ask(
            opened_on.port,
            "POST",
            "/uploads/",
            tus(opened_on, Upload_Length=str(len(data)), Upload_Concat="partial"),
        )
        assert created.status == 201, created
        path = "/uploads/" + (created.header("location") or "").rsplit("/", 1)[1]
        assert patch(continued_on, path, 0, data).status == 204
        paths.append(path)
    final = ask(
        a.port,
        "POST",
        "/uploads/",
        tus(a, Upload_Concat="final;" + " ".join(paths)),
    )
    assert final.status == 201, final
    file_id = (final.header("location") or "").rsplit("/", 1)[1]
    record = a.json("GET", f"/files/{file_id}")
    assert record["sha256"] == hashlib.sha256(b"".join(halves)).hexdigest()
    b_part = paths[1].rsplit("/", 1)[1]
    assert not (b.data_dir / "uploads" / f"{b_part}.bin").exists()
    assert not (a.data_dir / "uploads" / f"{b_part}.bin").exists()
    assert in_flight(a) == in_flight(b) == 0


def test_a_name_is_one_instance_and_a_retired_instance_cancels_its_uploads(
    pair: Pair,
) -> None:
    """A second instance named b does not start; a running instance is not
    retired; a stopped one is, and its unfinished uploads are 410."""
    a, b = pair.daemons["a"], pair.daemons["b"]
    with pytest.raises(RuntimeError, match="did not start"):
        start(pair.base / "b-again", *pair.options("b"))
    taken = (pair.base / "b-again" / "twistd.log").read_text()
    assert "another uploadd instance named 'b' runs on this database" in taken
    path = create(a, 2 * MIB)
    assert patch(b, path, 0, b"q" * MIB).status == 204
    listed = pair.ctl("instance", "list")
    assert f"a\thttp://127.0.0.1:{a.port}\trunning\n" in listed
    with pytest.raises(Exception, match="returned non-zero"):
        pair.ctl("instance", "retire", "a")
    a.stop()
    assert "a\thttp" in pair.ctl("instance", "list")
    with psycopg.connect(pair.url) as connection:
        (held,) = connection.execute(
            b"SELECT count(*) FROM uploads WHERE holder = 'a' AND (state = 'open'"
            b" OR (state = 'complete' AND concat = 'partial'))"
        ).fetchone() or (0,)
    assert held >= 1  # this one, and any an earlier test left
    assert pair.ctl("instance", "retire", "a") == (
        f"retired instance a: {held} unfinished uploads cancelled\n"
    )
    assert b.request("HEAD", path, None, **{"Tus-Resumable": "1.0.0"})[0] == 410
    refused = patch(b, path, MIB, b"q" * MIB)
    assert refused.status == 410 and "retired" in refused.json()["detail"]
    (pair.base / "a" / "twistd.log").unlink()
    with pytest.raises(RuntimeError, match="did not start"):
        pair.start("a")
    assert "instance 'a' was retired" in (pair.base / "a" / "twistd.log").read_text()


def test_the_draft_continues_through_the_other_instance_ending_a_stale_append(
    pair: Pair,
) -> None:
    """An IETF-draft upload opened on one instance, its PATCH there still
    streaming (the client gave up on it): a HEAD through another reaches
    the holder, ends that PATCH and tells the offset it reached; the PATCH
    through the other finishing from there makes the file; no slot is left
    on either. (b holds, and c, started for this, is the other: a may have
    been retired by the test before.)"""
    holder = pair.daemons["b"]
    other = pair.daemons.get("c") or pair.start("c")
    data = os.urandom(2 * MIB)

    def draft(daemon: Daemon, **headers: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {daemon.token}",
            "Upload-Draft-Interop-Version": "8",
            **headers,
        }

    created = converse(
        holder.port, "POST", "/uploads/", draft(holder, Upload_Complete="?0")
    )
    assert created.final.status == 201, created.final.body
    path = "/uploads/" + created.final.headers["location"].rsplit("/", 1)[1]
    append = draft(
        holder,
        Upload_Offset="0",
        Upload_Complete="?1",
        Content_Type="application/partial-upload",
    )
    stale = hold(holder.port, "PATCH", path, append, len(data))
    try:
        time.sleep(0.5)
        retrieved = converse(other.port, "HEAD", path, draft(other)).final
        assert retrieved.status == 204, retrieved
        offset = int(retrieved.header("upload-offset") or -1)
        assert 0 < offset <= 65536
        finished = converse(
            other.port,
            "PATCH",
            path,
            {
                **append,
                "Authorization": f"Bearer {other.token}",
                "Upload_Offset": str(offset),
            },
            data[offset:],
        ).final
        assert finished.status == 201, finished.body
        document = finished.json()
        # What the stale PATCH carried (``hold`` sends "x"s) is kept.
        whole = b"x" * offset + data[offset:]
        assert document["sha256"] == hashlib.sha256(whole).hexdigest()
    finally:
        stale.close()
    assert eventually(lambda: in_flight(holder) == 0 and in_flight(other) == 0, 10)
