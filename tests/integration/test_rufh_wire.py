"""The IETF resumable-upload draft over raw sockets to a real `twistd uploadd`:
each interop version's creation (its 104 read before the body is sent),
offset retrieval, append, 409 and completion; progress 104s; a newer request
ending an older one. Every byte of every response stream must parse."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from collections.abc import Iterator

import pytest

from tests.integration.daemon import Daemon, eventually, start
from tests.integration.wire import Exchange, Stream, request_head

pytestmark = pytest.mark.integration

PROBLEMS = "https://iana.org/assignments/http-problem-types#"
MAX_SIZE = 64 << 20


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = start(
        tmp_path_factory.mktemp("uploadd"),
        f"--http-max-upload-size={MAX_SIZE}",
        "--uploads-checkpoint=64K",
        "--uploads-progress-interval=0.05",
    )
    try:
        yield running
    finally:
        running.stop()


class Client:
    """One connection to the daemon speaking the draft at ``version``."""

    def __init__(self, daemon: Daemon, version: int | None) -> None:
        self.daemon = daemon
        self.version = version
        self.sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        self.stream = Stream(self.sock)

    def close(self) -> None:
        self.sock.close()

    def reconnect(self) -> None:
        """A new connection (a refusal closes the one it came on)."""
        self.sock.close()
        self.sock = socket.create_connection(
            ("127.0.0.1", self.daemon.port), timeout=10
        )
        self.stream = Stream(self.sock)

    def headers(self, **more: str) -> dict[str, str]:
        found = {"Authorization": f"Bearer {self.daemon.token}"}
        if self.version is not None:
            found["Upload-Draft-Interop-Version"] = str(self.version)
        found.update({k.replace("_", "-"): v for k, v in more.items()})
        return found

    def send_head(self, method: str, path: str, **headers: str) -> float:
        self.sock.sendall(request_head(method, path, self.headers(**headers)))
        return time.monotonic()

    def call(
        self, method: str, path: str, body: bytes = b"", **headers: str
    ) -> Exchange:
        if method not in ("HEAD", "GET", "DELETE", "OPTIONS") or body:
            headers.setdefault("Content-Length", str(len(body)))
        started = self.send_head(method, path, **headers)
        self.sock.sendall(body)
        if method == "HEAD":
            # A HEAD answer has no body whatever its Content-Length says.
            return Exchange((), self.stream.head(started, body=False))
        return self.stream.exchange(started)

    def append(
        self, path: str, body: bytes, offset: int, complete: bool, **headers: str
    ) -> Exchange:
        """An append of the latest draft: PATCH with Upload-Offset,
        Upload-Complete and application/partial-upload."""
        return self.call(
            "PATCH",
            path,
            body,
            Upload_Offset=str(offset),
            Upload_Complete="?1" if complete else "?0",
            Content_Type="application/partial-upload",
            **headers,
        )


def complete_field(version: int | None, complete: bool) -> tuple[str, str]:
    if version == 3:
        return "Upload-Incomplete", "?0" if complete else "?1"
    return "Upload-Complete", "?1" if complete else "?0"


def path_of(location: str) -> str:
    return "/uploads/" + location.rstrip("/").rsplit("/", 1)[1]


def in_flight(daemon: Daemon) -> int:
    return int(daemon.json("GET", "/health")["uploads_in_flight"])


def content_of(daemon: Daemon, file_id: str) -> bytes:
    status, _, body = daemon.request("GET", f"/files/{file_id}/content")
    assert status == 200
    return body


VERSIONS = [3, 4, 5, 6, 7, 8, None]


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"interop-{v}")
def test_each_version_creates_retrieves_appends_and_completes(
    daemon: Daemon, version: int | None
) -> None:
    """Creation is announced by a 104 (Location, the version, Upload-Limit
    from version 6) before any body byte is sent; HEAD tells the offset; a
    wrong offset is 409 mismatching-upload-offset; appends answer with the
    version's status; the completing one is the file, bytes intact."""
    data = hashlib.sha256(str(version).encode()).digest() * 4096  # 128 KiB
    name, incomplete = complete_field(version, False)
    client = Client(daemon, version)
    try:
        started = client.send_head(
            "POST",
            "/uploads/",
            **{name: incomplete},
            Content_Length="40000",
            Upload_Length=str(len(data)),
            Content_Disposition='inline; filename="draft.bin"',
            Content_Type="application/x-draft",
        )
        if version is None:
            # No interop version named: the draft forbids 104s to it.
            client.sock.sendall(data[:40000])
            created = client.stream.exchange(started)
            assert created.interim == ()
            location = created.final.headers["location"]
        else:
            announced = client.stream.head(started)
            assert announced.status == 104
            assert announced.header("upload-draft-interop-version") == str(version)
            limit = announced.header("upload-limit")
            if version < 6:
                assert limit is None
            else:
                assert limit is not None and f"max-size={MAX_SIZE}" in limit
                age = "expires" if version == 6 else "max-age"
                assert f"{age}=" in limit
            client.sock.sendall(data[:40000])
            created = client.stream.exchange(started)
            location = announced.headers["location"]
        assert location.startswith("http://")
        assert created.final.status == 201, created.final.body
        assert created.final.header(name) == incomplete
        assert created.final.header("upload-offset") == "40000"
        assert created.final.header("location") == location
        path = path_of(location)

        retrieved = client.call("HEAD", path)
        assert retrieved.final.status == 204
        assert retrieved.final.header("upload-offset") == "40000"
        assert retrieved.final.header(name) == incomplete
        assert retrieved.final.header("upload-length") == str(len(data))
        assert retrieved.final.header("cache-control") == "no-store"
        assert (retrieved.final.header("upload-limit") is not None) == (
            version is None or version >= 6
        )

        partial = {"Content_Type": "application/partial-upload"}
        wrong = client.call(
            "PATCH",
            path,
            data[50000:60000],
            Upload_Offset="50000",
            **{name: incomplete},
            **partial,
        )
        assert wrong.final.status == 409
        problem = wrong.final.json()
        assert problem["type"] == PROBLEMS + "mismatching-upload-offset"
        assert problem["expected-offset"] == 40000
        assert problem["provided-offset"] == 50000
        assert wrong.final.header("upload-offset") == "40000"
        assert wrong.final.header(name) == incomplete
        assert wrong.final.header("content-type") == "application/problem+json"
        client.reconnect()

        appended = client.call(
            "PATCH",
            path,
            data[40000:100000],
            Upload_Offset="40000",
            **{name: incomplete},
            **partial,
        )
        expected = 201 if version is not None and version <= 6 else 204
        assert appended.final.status == expected, appended.final.body
        assert appended.final.header("upload-offset") == "100000"
        assert appended.final.header(name) == incomplete

        done_name, done = complete_field(version, True)
        finished = client.call(
            "PATCH",
            path,
            data[100000:],
            Upload_Offset="100000",
            **{done_name: done},
            **partial,
        )
        assert finished.final.status == 201, finished.final.body
        assert finished.final.header(done_name) == done
        document = finished.final.json()
        assert document["size"] == len(data)
        assert document["filename"] == "draft.bin"
        assert document["content_type"] == "application/x-draft"
        assert document["sha256"] == hashlib.sha256(data).hexdigest()
        assert content_of(daemon, document["id"]) == data

        after = client.call("HEAD", path)
        assert after.final.status == 204
        assert after.final.header(done_name) == done
        assert after.final.header("upload-offset") == str(len(data))
    finally:
        client.close()
    assert eventually(lambda: in_flight(daemon) == 0, 10)


@pytest.mark.parametrize("version", [5, 6, 8])
def test_a_version_before_6_needs_no_media_type_and_from_6_one_is_required(
    daemon: Daemon, version: int
) -> None:
    """From interop version 6 an append is application/partial-upload (415
    otherwise, nothing stored); before, any body is taken."""
    client = Client(daemon, version)
    try:
        created = client.call("POST", "/uploads/", Upload_Complete="?0")
        path = path_of(created.final.headers["location"])
        plain = client.call(
            "PATCH",
            path,
            b"abc",
            Upload_Offset="0",
            Upload_Complete="?0",
            Content_Type="application/octet-stream",
        )
        if version >= 6:
            assert plain.final.status == 415
            # The refusal closes the connection; the offset did not move.
            client.reconnect()
            assert client.call("HEAD", path).final.header("upload-offset") == "0"
        else:
            assert plain.final.status in (201, 204)
            assert plain.final.header("upload-offset") == "3"
    finally:
        client.close()


def test_the_whole_body_with_upload_complete_is_an_ordinary_upload(
    daemon: Daemon,
) -> None:
    """Upload-Complete: ?1 with the whole body: 104, then the file's
    document (201, Location of the file, Upload-Complete: ?1)."""
    data = b"one request, resumable if cut" * 1000
    client = Client(daemon, 8)
    try:
        answer = client.call(
            "POST", "/uploads/?name=whole.txt", data, Upload_Complete="?1"
        )
    finally:
        client.close()
    assert [a.status for a in answer.interim] == [104]
    assert answer.final.status == 201
    assert answer.final.header("upload-complete") == "?1"
    document = answer.final.json()
    assert answer.final.headers["location"].endswith(f"/files/{document['id']}")
    assert document["filename"] == "whole.txt"
    assert content_of(daemon, document["id"]) == data


def test_expect_100_continue_gets_104_and_100(daemon: Daemon) -> None:
    """A client awaiting 100 Continue gets the 104 and the 100 (the draft
    forbids leaving the 100 out), then sends its body."""
    client = Client(daemon, 8)
    try:
        started = client.send_head(
            "POST",
            "/uploads/",
            Upload_Complete="?1",
            Content_Length="5",
            Expect="100-continue",
        )
        first = client.stream.head(started)
        second = client.stream.head(started)
        assert sorted([first.status, second.status]) == [100, 104]
        client.sock.sendall(b"hello")
        final = client.stream.exchange(started)
    finally:
        client.close()
    assert final.interim == ()
    assert final.final.status == 201


def test_an_http_1_0_client_gets_no_104(daemon: Daemon) -> None:
    """HTTP/1.0 has no informational responses: only the final answer."""
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(
            b"POST /uploads/ HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer "
            + daemon.token.encode()
            + b"\r\nUpload-Complete: ?1\r\nContent-Length: 2\r\n\r\nhi"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.0 201 ") or data.startswith(b"HTTP/1.1 201 ")
    assert b" 104 " not in data.split(b"\r\n", 1)[0]


def test_progress_104s_carry_the_durable_offset_while_the_body_streams(
    daemon: Daemon,
) -> None:
    """While a long body arrives, repeated 104s carry Upload-Offset (and no
    Location), rising, never past what was sent; then the final answer."""
    block = b"\x5a" * (64 << 10)
    blocks = 24
    client = Client(daemon, 8)
    try:
        started = client.send_head(
            "POST",
            "/uploads/",
            Upload_Complete="?0",
            Content_Length=str(len(block) * blocks),
        )
        announced = client.stream.head(started)
        assert announced.status == 104 and announced.header("location")
        sent = 0
        progress: list[int] = []
        for _ in range(blocks - 1):
            client.sock.sendall(block)
            sent += len(block)
            time.sleep(0.08)
            client.sock.settimeout(0.01)
            try:
                client.stream._fill()
            except TimeoutError:
                pass
            finally:
                client.sock.settimeout(10)
            while b"\r\n\r\n" in client.stream.buffer:
                interim = client.stream.head(started)
                assert interim.status == 104
                assert interim.header("location") is None
                offset = int(interim.headers["upload-offset"])
                assert offset <= sent
                progress.append(offset)
        client.sock.sendall(block)
        final = client.stream.exchange(started)
    finally:
        client.close()
    assert final.final.status == 201
    progress += [int(a.headers["upload-offset"]) for a in final.interim]
    assert len(progress) >= 3, progress
    assert progress == sorted(set(progress)), progress
    assert final.final.header("upload-offset") == str(len(block) * blocks)


def stale_append(
    daemon: Daemon, version: int, sent: bytes, declared: int
) -> tuple[str, Client, Client]:
    """A new upload with a PATCH into it that declared ``declared`` bytes,
    sent ``sent`` and stalled (its client gave up on it): the upload's
    path, the stale PATCH's client and a fresh one."""
    client = Client(daemon, version)
    created = client.call("POST", "/uploads/", Upload_Complete="?0")
    path = path_of(created.final.headers["location"])
    client.close()
    stale = Client(daemon, version)
    stale.send_head(
        "PATCH",
        path,
        Upload_Offset="0",
        Upload_Complete="?1",
        Content_Type="application/partial-upload",
        Content_Length=str(declared),
    )
    stale.sock.sendall(sent)
    time.sleep(0.5)
    return path, stale, Client(daemon, version)


def test_a_newer_request_ends_the_one_still_streaming(daemon: Daemon) -> None:
    """A client that believes its PATCH dead asks HEAD on a new connection:
    the old PATCH is cut, what it carried counted, and the offset HEAD
    gives is accepted by the next PATCH; no slot is left behind."""
    data = bytes(range(256)) * 4096  # 1 MiB
    path, stale, fresh = stale_append(daemon, 8, data[:300000], len(data))
    try:
        retrieved = fresh.call("HEAD", path)
        assert retrieved.final.status == 204
        offset = int(retrieved.final.headers["upload-offset"])
        assert 0 < offset <= 300000
        # The stale request's connection is gone.
        stale.sock.settimeout(5)
        with pytest.raises((ConnectionError, OSError)):
            stale.stream.exchange(time.monotonic())
        finished = fresh.append(path, data[offset:], offset, True)
        assert finished.final.status == 201, finished.final.body
        assert content_of(daemon, finished.final.json()["id"]) == data
    finally:
        stale.close()
        fresh.close()
    assert eventually(lambda: in_flight(daemon) == 0, 10)


def test_a_newer_append_takes_over_from_a_stale_one(daemon: Daemon) -> None:
    """A second PATCH while the first still streams: the first is ended,
    the second is judged against the offset the first reached (409 with
    that offset if it named another), and resuming from it works."""
    data = b"\x11" * (512 << 10)
    path, stale, fresh = stale_append(daemon, 7, data[:200000], len(data))
    try:
        # Offset 0 is no longer the upload's: the stale PATCH's bytes count.
        conflict = fresh.append(path, b"", 0, False)
        assert conflict.final.status == 409
        offset = conflict.final.json()["expected-offset"]
        assert 0 < offset <= 200000
    finally:
        stale.close()
        fresh.close()
    assert eventually(lambda: in_flight(daemon) == 0, 10)


def test_cancellation_ends_a_streaming_body_and_the_upload(daemon: Daemon) -> None:
    """DELETE while a body streams: the body is cut, 204, then the upload
    is gone (404) and its bytes with it."""
    path, stale, fresh = stale_append(daemon, 8, b"x" * 100000, 1000000)
    try:
        assert fresh.call("DELETE", path).final.status == 204
        assert fresh.call("HEAD", path).final.status == 404
    finally:
        stale.close()
        fresh.close()
    upload_id = path.rsplit("/", 1)[1]
    assert eventually(
        lambda: not (daemon.data_dir / "uploads" / f"{upload_id}.bin").exists(), 10
    )
    assert eventually(lambda: in_flight(daemon) == 0, 10)


def test_lengths_that_disagree_are_inconsistent_upload_length(daemon: Daemon) -> None:
    """Upload-Length against a completing request's size, or against the
    length stated before: 400 inconsistent-upload-length, nothing stored."""
    client = Client(daemon, 8)
    try:
        bad = client.call(
            "POST", "/uploads/", b"12345", Upload_Complete="?1", Upload_Length="10"
        )
        assert bad.final.status == 400
        assert bad.final.json()["type"] == PROBLEMS + "inconsistent-upload-length"
        assert bad.interim == ()
    finally:
        client.close()
    client = Client(daemon, 8)
    try:
        created = client.call(
            "POST", "/uploads/", b"12345", Upload_Complete="?0", Upload_Length="10"
        )
        path = path_of(created.final.headers["location"])
        later = client.append(path, b"678", 5, True)
        assert later.final.status == 400
        assert later.final.json()["type"] == PROBLEMS + "inconsistent-upload-length"
        assert later.final.header("upload-complete") == "?0"
    finally:
        client.close()
    client = Client(daemon, 8)
    try:
        assert client.call("HEAD", path).final.header("upload-offset") == "5"
    finally:
        client.close()


def test_over_the_size_limit_is_413_with_the_limits(daemon: Daemon) -> None:
    """An upload longer than max-size is refused before its body with 413
    and Upload-Limit, and no upload is left."""
    client = Client(daemon, 8)
    try:
        started = client.send_head(
            "POST",
            "/uploads/",
            Upload_Complete="?0",
            Upload_Length=str(MAX_SIZE + 1),
            Content_Length="0",
        )
        answer = client.stream.exchange(started)
    finally:
        client.close()
    assert answer.interim == ()
    assert answer.final.status == 413
    assert f"max-size={MAX_SIZE}" in answer.final.headers["upload-limit"]
    # A body declared over the limit is refused by its Content-Length alone,
    # before anything is planned: the same answer.
    for target in ("/uploads/", "/files/too-large.bin"):
        client = Client(daemon, 8)
        try:
            started = client.send_head(
                "POST" if target == "/uploads/" else "PUT",
                target,
                Upload_Complete="?1",
                Content_Length=str(MAX_SIZE + 1),
            )
            declared = client.stream.exchange(started).final
        finally:
            client.close()
        assert declared.status == 413, target
        assert f"max-size={MAX_SIZE}" in declared.headers["upload-limit"], target
        assert declared.header("upload-complete") == "?0", target
    listed = daemon.json("GET", "/uploads/")
    assert all(r["size"] != MAX_SIZE + 1 for r in listed["results"])


def test_a_completed_upload_replays_its_answer_or_refuses_more_bytes(
    daemon: Daemon,
) -> None:
    """An empty append completing a completed upload gets the final answer
    again (its first was lost); more bytes are 400 completed-upload."""
    client = Client(daemon, 8)
    try:
        first = client.call("POST", "/uploads/", b"done", Upload_Complete="?1")
        location = first.interim[0].headers["location"]
        path = path_of(location)
        again = client.append(path, b"", 4, True)
        assert again.final.status == 201
        assert again.final.json()["id"] == first.final.json()["id"]
        more = client.append(path, b"!", 4, True)
        assert more.final.status == 400
        assert more.final.json()["type"] == PROBLEMS + "completed-upload"
        assert more.final.header("connection") == "close"
    finally:
        client.close()


def test_an_unspoken_version_gets_an_ordinary_answer(daemon: Daemon) -> None:
    """Interop version 99: no 104, no upload resource; the body is a file
    (201, its document) like any single upload."""
    client = Client(daemon, 99)
    try:
        answer = client.call(
            "POST", "/uploads/?name=plain.txt", b"plain", Upload_Complete="?0"
        )
    finally:
        client.close()
    assert answer.interim == ()
    assert answer.final.status == 201
    assert answer.final.header("upload-complete") is None
    assert answer.final.header("upload-offset") is None
    document = answer.final.json()
    assert content_of(daemon, document["id"]) == b"plain"


def test_options_announces_the_limits(daemon: Daemon) -> None:
    """OPTIONS on /uploads/ carries Upload-Limit (min-size, max-size, the
    lifetime) beside tus's discovery headers."""
    client = Client(daemon, None)
    try:
        answer = client.call("OPTIONS", "/uploads/")
    finally:
        client.close()
    limit = answer.final.headers["upload-limit"]
    assert "min-size=0" in limit and f"max-size={MAX_SIZE}" in limit
    assert "max-age=" in limit
    assert answer.final.header("tus-version") == "1.0.0"


def test_tus_and_the_draft_see_one_upload(daemon: Daemon) -> None:
    """An upload the draft made is listed with tus's, and tus's HEAD sees its
    offset; a HEAD with neither protocol's fields on a tus upload is tus's
    412."""
    client = Client(daemon, 8)
    try:
        created = client.call("POST", "/uploads/", b"shared", Upload_Complete="?0")
        path = path_of(created.final.headers["location"])
    finally:
        client.close()
    listed = daemon.json("GET", "/uploads/")
    entry = next(r for r in listed["results"] if path.endswith(r["id"]))
    assert entry["protocol"] == "ietf" and entry["offset"] == 6
    status, headers, _ = daemon.request(
        "HEAD", path, None, **{"Tus-Resumable": "1.0.0"}
    )
    assert status == 200 and headers["Upload-Offset"] == "6"
    status, headers, _ = daemon.request(
        "POST", "/uploads/", None, **{"Tus-Resumable": "1.0.0", "Upload-Length": "3"}
    )
    tus_path = path_of(headers["Location"])
    status, _, _ = daemon.request("HEAD", tus_path)
    assert status == 412


def test_a_put_of_a_file_asking_to_be_resumable_becomes_one(daemon: Daemon) -> None:
    """PUT /files/<name> with Upload-Complete (as an HTTP stack upgrading a
    plain upload sends it): 104 with an upload to resume; cut off, it is
    finished by PATCH, and the answer is the PUT's own (the file, named by
    the path). A version not spoken stays an ordinary PUT."""
    data = b"\x42" * 300000
    client = Client(daemon, 8)
    try:
        started = client.send_head(
            "PUT",
            "/files/upgraded.bin",
            Upload_Complete="?1",
            Content_Length=str(len(data)),
            Content_Type="application/x-up",
        )
        announced = client.stream.head(started)
        assert announced.status == 104
        client.sock.sendall(data[:100000])
        time.sleep(0.3)
    finally:
        client.close()
    path = path_of(announced.headers["location"])
    client = Client(daemon, 8)
    try:
        offset = int(
            eventually(
                lambda: (
                    client.call("HEAD", path).final.headers["upload-offset"] != "0"
                    and client.call("HEAD", path).final.headers["upload-offset"]
                ),
                10,
            )
        )
        assert 0 < offset <= 100000
        finished = client.append(path, data[offset:], offset, True)
    finally:
        client.close()
    assert finished.final.status == 201
    document = finished.final.json()
    assert document["filename"] == "upgraded.bin"
    assert document["content_type"] == "application/x-up"
    assert content_of(daemon, document["id"]) == data
    client = Client(daemon, 99)
    try:
        plain = client.call("PUT", "/files/plain.bin", b"plain", Upload_Complete="?1")
    finally:
        client.close()
    assert plain.interim == () and plain.final.status == 201
    assert plain.final.json()["filename"] == "plain.bin"


def test_a_draft_request_ends_a_stale_tus_append_and_tus_still_gets_423(
    daemon: Daemon,
) -> None:
    """A tus PATCH streaming into a tus upload: another tus PATCH is 423 as
    tus has it; a draft HEAD ends the stale one and tells its offset."""
    status, headers, _ = daemon.request(
        "POST",
        "/uploads/",
        None,
        **{"Tus-Resumable": "1.0.0", "Upload-Length": "1000000"},
    )
    assert status == 201
    path = path_of(headers["Location"])
    tus = {
        "Authorization": f"Bearer {daemon.token}",
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }
    stale = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    try:
        stale.sendall(request_head("PATCH", path, {**tus, "Content-Length": "1000000"}))
        stale.sendall(b"t" * 200000)
        time.sleep(0.5)
        status, _, _ = daemon.request("PATCH", path, b"x", **tus)
        assert status == 423
        client = Client(daemon, 8)
        try:
            retrieved = client.call("HEAD", path)
        finally:
            client.close()
        assert retrieved.final.status == 204
        assert 0 < int(retrieved.final.headers["upload-offset"]) <= 200000
    finally:
        stale.close()
    assert eventually(lambda: in_flight(daemon) == 0, 10)


def field(algorithm: str, data: bytes) -> str:
    """An RFC 9530 digest field member for ``data``."""
    digest = hashlib.new(algorithm.replace("-", ""), data).digest()
    return f"{algorithm}=:{base64.b64encode(digest).decode()}:"


def test_content_digest_checks_each_request_and_a_mismatch_keeps_nothing(
    daemon: Daemon,
) -> None:
    """Content-Digest (sha-256, sha-512) vouches for one request's content:
    a mismatch is 400 digest-mismatched-values and its bytes are discarded
    (the offset stays); unknown algorithms are ignored."""
    first, second = b"a" * 5000, b"b" * 7000
    client = Client(daemon, 8)
    try:
        created = client.call(
            "POST",
            "/uploads/",
            first,
            Upload_Complete="?0",
            Content_Digest=field("sha-256", first),
        )
        assert created.final.status == 201, created.final.body
        path = path_of(created.final.headers["location"])
        partial = {"Content_Type": "application/partial-upload"}
        wrong = client.call(
            "PATCH",
            path,
            second,
            Upload_Offset="5000",
            Upload_Complete="?0",
            Content_Digest=field("sha-512", b"something else"),
            **partial,
        )
        assert wrong.final.status == 400
        problem = wrong.final.json()
        assert problem["type"] == PROBLEMS + "digest-mismatched-values"
        assert problem["mismatched_digests"][0]["algorithm"] == "sha-512"
        assert wrong.final.header("upload-complete") == "?0"
        client.reconnect()
        assert client.call("HEAD", path).final.header("upload-offset") == "5000"
        right = client.call(
            "PATCH",
            path,
            second,
            Upload_Offset="5000",
            Upload_Complete="?1",
            Content_Digest=f"md5=:AAAA:, {field('sha-512', second)}",
            **partial,
        )
        assert right.final.status == 201, right.final.body
        assert content_of(daemon, right.final.json()["id"]) == first + second
    finally:
        client.close()


def test_repr_digest_is_verified_when_the_upload_completes(daemon: Daemon) -> None:
    """A Repr-Digest stated at creation is kept and checked by the request
    completing the upload: wrong, that request's bytes go (400) and the
    upload waits; a request stating the right one completes it, and
    Want-Repr-Digest gets the file's digest, on completion and download."""
    data = bytes(range(256)) * 100
    client = Client(daemon, 7)
    try:
        created = client.call(
            "POST",
            "/uploads/",
            data[:10000],
            Upload_Complete="?0",
            Repr_Digest=field("sha-256", b"not the file"),
        )
        path = path_of(created.final.headers["location"])
        partial = {"Content_Type": "application/partial-upload"}
        refused = client.call(
            "PATCH",
            path,
            data[10000:],
            Upload_Offset="10000",
            Upload_Complete="?1",
            **partial,
        )
        assert refused.final.status == 400
        assert refused.final.json()["type"] == PROBLEMS + "digest-mismatched-values"
        client.reconnect()
        assert client.call("HEAD", path).final.header("upload-offset") == "10000"
        done = client.call(
            "PATCH",
            path,
            data[10000:],
            Upload_Offset="10000",
            Upload_Complete="?1",
            Repr_Digest=field("sha-512", data),
            Want_Repr_Digest="sha-256=10",
            **partial,
        )
        assert done.final.status == 201, done.final.body
        assert done.final.header("repr-digest") == field("sha-256", data)
        file_id = done.final.json()["id"]
    finally:
        client.close()
    status, headers, body = daemon.request(
        "GET", f"/files/{file_id}/content", None, **{"Want-Repr-Digest": "sha-256=5"}
    )
    assert status == 200 and body == data
    assert headers["Repr-Digest"] == field("sha-256", data)
