"""tus-js-client 4.3.1 speaking the IETF resumable-upload draft (its
``protocol: 'ietf-draft-03'``, interop version 5, and ``'ietf-draft-05'``,
version 6) against a real ``twistd uploadd``: under node, and in headless
Chromium on a page of another origin. Whole uploads in chunks, uploads cut
off and resumed from the server's offset (behind a relay counting what the
resumption sent), data sent with the creation request, termination."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.integration.daemon import Daemon, eventually, start
from tests.integration.relay import Relay
from tests.integration.test_web import throttle

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "tests" / "clients"
TUS_JS = ROOT / "uploadd" / "web" / "vendor" / "tus-js-client-4.3.1.min.js"
MIB = 1024 * 1024
#: What the request heads (and preflights) of one resumption add to its bytes.
HEADS = 64 * 1024
#: tus-js-client's protocol option -> the interop version it sends.
PROTOCOLS = {"ietf-draft-03": "5", "ietf-draft-05": "6"}
PARTIAL_UPLOAD = "application/partial-upload"

Events = list[dict[str, Any]]


@attrs.define
class Page:
    """A static site on loopback, an origin other than uploadd's: the test
    page, the tus-js-client uploadd ships, and ``source`` as /source.bin."""

    source: bytes = b""
    _server: ThreadingHTTPServer | None = None

    @property
    def origin(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Page:
        page = self
        files = {
            "/": ("text/html", (CLIENTS / "rufh_page.html").read_bytes()),
            "/tus.min.js": ("text/javascript", TUS_JS.read_bytes()),
        }

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/source.bin":
                    ctype, body = "application/octet-stream", page.source
                elif self.path in files:
                    ctype, body = files[self.path]
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    served = Page().start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, page: Page) -> Iterator[Daemon]:
    """One uploadd for the module, letting the test page's origin call it."""
    running = start(
        tmp_path_factory.mktemp("uploadd"), f"--http-cors-origins={page.origin}"
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def relay(daemon: Daemon) -> Iterator[Relay]:
    running = Relay(upstream=daemon.port)
    try:
        yield running
    finally:
        running.close()


def node_command(base: str, daemon: Daemon, protocol: str, *args: str) -> list[str]:
    """tests/clients/rufh_upload.mjs speaking ``protocol`` to ``base``."""
    if shutil.which("node") is None or not (CLIENTS / "node_modules").exists():
        pytest.fail("node and tests/clients/node_modules are needed (make setup)")
    return [
        "node",
        str(CLIENTS / "rufh_upload.mjs"),
        f"--endpoint={base}/uploads/",
        f"--token={daemon.token}",
        f"--protocol={protocol}",
        *args,
    ]


def parse_events(output: bytes) -> Events:
    return [json.loads(line) for line in output.decode().splitlines()]


def node_client(base: str, daemon: Daemon, protocol: str, *args: str) -> Events:
    """The client run to its end: its events, the last one a success, an
    abort or a termination."""
    done = subprocess.run(
        node_command(base, daemon, protocol, *args),
        capture_output=True,
        timeout=120,
        check=False,
    )
    events = parse_events(done.stdout)
    assert done.returncode == 0, (events, done.stderr.decode())
    return events


def exchanges(events: Events) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each request the client made with the answer it read."""
    sent = [e for e in events if e["event"] == "request"]
    read = [e for e in events if e["event"] == "response"]
    assert [e["method"] for e in sent] == [e["method"] for e in read], events
    return list(zip(sent, read, strict=True))


def exchanges_so_far(events: Events) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each request a client cut off made, with the answer it read (an
    empty one for the last request if it read none)."""
    sent = [e for e in events if e["event"] == "request"]
    read = [e for e in events if e["event"] == "response"]
    assert len(sent) - len(read) in (0, 1), events
    return list(zip(sent, [*read, {}][: len(sent)], strict=True))


def exchange(events: Events, method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one ``method`` request the client made, with its answer."""
    (sent,) = [e for e in events if e["event"] == "request" and e["method"] == method]
    (read,) = [e for e in events if e["event"] == "response" and e["method"] == method]
    return sent, read


def source(tmp_path: Path, name: str, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def in_flight(daemon: Daemon) -> int:
    return int(daemon.json("GET", "/health")["uploads_in_flight"])


def draft_offset(daemon: Daemon, url: str, interop: str) -> int:
    """The upload's offset by the draft's HEAD (which waits for a body still
    being recorded)."""
    status, headers, _ = daemon.request(
        "HEAD", path_of(url), None, **{"Upload-Draft-Interop-Version": interop}
    )
    assert (status, headers["Upload-Complete"]) == (204, "?0"), headers
    return int(headers["Upload-Offset"])


def check_stored(daemon: Daemon, final: dict[str, Any], data: bytes, name: str) -> Any:
    """The answer that completed the upload names the file (Location and
    Link), GET /files lists it with its size, its bytes and sha256 are the
    source's and it keeps the name from the metadata; its record."""
    assert final["status"] == 201
    assert final["complete"] == "?1"
    assert final["offset"] == str(len(data))
    location = final["location"]
    assert "/files/" in location
    file_id = location.rsplit("/", 1)[-1]
    listed = daemon.json("GET", "/files?page_size=1000")["results"]
    assert {f["id"]: f["size"] for f in listed}[file_id] == len(data)
    status, _, body = daemon.request("GET", f"/files/{file_id}/content")
    assert status == 200
    assert body == data
    stored = daemon.json("GET", f"/files/{file_id}")
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert stored["filename"] == name
    return stored


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_node_uploads_a_file_in_chunks(
    daemon: Daemon, tmp_path: Path, protocol: str
) -> None:
    """tus-js-client under node with 1 MiB chunks: a POST creates the upload
    (201, Location, Upload-Offset 0), each PATCH appends at the offset the
    last answer gave (201 with the new offset, the media type
    application/partial-upload from version 6), the last one says
    Upload-Complete: ?1 and its answer names the stored file, whose bytes,
    sha256 and name are the source's; nothing is left in flight."""
    interop = PROTOCOLS[protocol]
    path, data = source(tmp_path, "whole.bin", 5 * MIB + 123)
    events = node_client(
        daemon.base, daemon, protocol, f"--file={path}", f"--chunk-size={MIB}"
    )
    (create, created), *appends = exchanges(events)
    assert (create["method"], create["interop"], create["complete"]) == (
        "POST",
        interop,
        "?0",
    )
    assert (created["status"], created["offset"], created["interop"]) == (
        201,
        "0",
        interop,
    )
    upload_url = created["location"]
    assert "/uploads/" in upload_url
    assert [a["offset"] for a, _ in appends] == [str(n * MIB) for n in range(6)]
    assert [a["complete"] for a, _ in appends] == ["?0"] * 5 + ["?1"]
    media = PARTIAL_UPLOAD if interop == "6" else None
    assert {a["contentType"] for a, _ in appends} == {media}
    assert {(a["method"], a["url"]) for a, _ in appends} == {("PATCH", upload_url)}
    answers = [(r["status"], r["offset"], r["complete"]) for _, r in appends]
    assert answers[:-1] == [(201, str(n * MIB), "?0") for n in range(1, 6)]
    success = events[-1]
    assert success["event"] == "success"
    assert success["link"] == f'<{appends[-1][1]["location"]}>; rel="file"'
    stored = check_stored(daemon, appends[-1][1], data, "whole.bin")
    assert stored["content_type"] == "application/octet-stream"
    print(f"{protocol}: {len(appends)} PATCHes, answers {answers}")
    eventually(lambda: in_flight(daemon) == 0, 10, "no upload in flight")


def cut_off(
    daemon: Daemon, relay: Relay, protocol: str, cut: str, *args: str
) -> tuple[str, Events]:
    """Run the client through ``relay`` until it is cut off in its third
    1 MiB PATCH: by ``upload.abort()`` at the first progress that PATCH
    reports ("abort"), or by SIGKILL while the relay holds that PATCH after
    2.5 MiB ("kill"); the upload's URL and the client's events."""
    base = f"http://127.0.0.1:{relay.port}"
    if cut == "abort":
        events = node_client(base, daemon, protocol, *args, f"--abort-at={2 * MIB + 1}")
        assert events[-1]["event"] == "aborted"
        assert 2 * MIB < events[-1]["sent"] < 3 * MIB
        return events[-1]["url"], events
    relay.up_budget = 5 * MIB // 2
    process = subprocess.Popen(
        node_command(base, daemon, protocol, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert relay.stalled.wait(60), "the relay's budget was not spent"
        # The third PATCH is on its way, the relay holds the rest.
        eventually(lambda: in_flight(daemon) == 1, 10, "the third PATCH arriving")
    finally:
        process.kill()
        output, _ = process.communicate(timeout=10)
    # What the relay held never arrives; the server sees the connection end.
    relay.drop()
    events = parse_events(output)
    (_, created), *_ = exchanges_so_far(events)
    return created["location"], events


@pytest.mark.parametrize("cut", ["abort", "kill"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_node_resumes_an_interrupted_upload_from_the_server_offset(
    daemon: Daemon, relay: Relay, tmp_path: Path, protocol: str, cut: str
) -> None:
    """A node process is cut off in its third 1 MiB PATCH (by
    ``upload.abort()`` as it starts, or killed while it is half sent); a second
    one finds the upload in the same URL storage, asks its offset (HEAD)
    and PATCHes from the offset the server holds, not from the last one it
    was told, sending only the rest (counted by a relay); the file is the
    source's."""
    interop = PROTOCOLS[protocol]
    path, data = source(tmp_path, "resumed.bin", 6 * MIB + 77)
    common = (
        f"--file={path}",
        f"--chunk-size={MIB}",
        f"--url-storage={tmp_path / 'urls.json'}",
    )
    upload_url, first = cut_off(daemon, relay, protocol, cut, *common)
    # The third PATCH went unanswered: the client was last told 2 MiB.
    (_, created), *appends = exchanges_so_far(first)
    assert created["location"] == upload_url
    assert [a["offset"] for a, _ in appends] == [str(n * MIB) for n in range(3)]
    assert [r["offset"] for _, r in appends if r] == [str(MIB), str(2 * MIB)]
    offset = draft_offset(daemon, upload_url, interop)
    # What arrived of the third PATCH before the connection ended is kept.
    assert 2 * MIB <= offset < (3 * MIB if cut == "abort" else 5 * MIB // 2)
    (unfinished,) = [
        u
        for u in daemon.json("GET", "/uploads/")["results"]
        if u["url"].endswith(path_of(upload_url))
    ]
    assert (unfinished["offset"], unfinished["protocol"]) == (offset, "ietf")

    relay.reset()
    base = f"http://127.0.0.1:{relay.port}"
    second = node_client(base, daemon, protocol, *common)
    assert second[0] == {"event": "resuming", "url": upload_url}
    pairs = exchanges(second)
    (head, told), (resume, _) = pairs[:2]
    assert (head["method"], head["url"]) == ("HEAD", upload_url)
    assert head["interop"] == interop
    assert (told["status"], told["offset"]) == (204, str(offset))
    assert (resume["method"], resume["offset"]) == ("PATCH", str(offset))
    assert {r["method"] for r, _ in pairs[1:]} == {"PATCH"}
    # Only what the server lacked went up again.
    assert len(data) - offset <= relay.up <= len(data) - offset + HEADS
    check_stored(daemon, pairs[-1][1], data, "resumed.bin")
    print(
        f"{protocol}, {cut}: server offset {offset} (client told {2 * MIB}); "
        f"resumption sent {relay.up} bytes for {len(data) - offset} in "
        f"{len(pairs) - 1} PATCHes"
    )
    eventually(lambda: in_flight(daemon) == 0, 10, "no upload in flight")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_node_sends_data_with_the_creation_request(
    daemon: Daemon, tmp_path: Path, protocol: str
) -> None:
    """With uploadDataDuringCreation the POST carries the first 1 MiB (with
    Content-Type application/partial-upload in version 6) and its 201 says
    the offset is 1 MiB; the file stored is the source's and its type is
    not the draft's media type, though no filetype was given."""
    interop = PROTOCOLS[protocol]
    path, data = source(tmp_path, "created.bin", 5 * MIB // 2)
    events = node_client(
        daemon.base,
        daemon,
        protocol,
        f"--file={path}",
        f"--chunk-size={MIB}",
        "--during-creation",
        "--no-filetype",
    )
    (create, created), *appends = exchanges(events)
    assert (create["method"], create["complete"]) == ("POST", "?0")
    assert create["contentType"] == (PARTIAL_UPLOAD if interop == "6" else None)
    assert (created["status"], created["offset"]) == (201, str(MIB))
    assert "/uploads/" in created["location"]
    assert [a["offset"] for a, _ in appends] == [str(MIB), str(2 * MIB)]
    stored = check_stored(daemon, appends[-1][1], data, "created.bin")
    assert stored["content_type"] != PARTIAL_UPLOAD
    print(f"{protocol}: stored as {stored['content_type']}")
    eventually(lambda: in_flight(daemon) == 0, 10, "no upload in flight")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_node_sends_a_small_file_whole_in_the_creation_request(
    daemon: Daemon, tmp_path: Path, protocol: str
) -> None:
    """A file smaller than a chunk, with uploadDataDuringCreation, goes in
    one POST saying Upload-Complete: ?1, answered 201 with the stored file's
    document and its Location, which the client takes as done."""
    path, data = source(tmp_path, "small.bin", 300 * 1024)
    events = node_client(
        daemon.base,
        daemon,
        protocol,
        f"--file={path}",
        f"--chunk-size={MIB}",
        "--during-creation",
    )
    ((create, created),) = exchanges(events)
    assert (create["method"], create["complete"]) == ("POST", "?1")
    assert events[-1]["event"] == "success"
    assert json.loads(events[-1]["body"])["sha256"] == hashlib.sha256(data).hexdigest()
    check_stored(daemon, created, data, "small.bin")
    eventually(lambda: in_flight(daemon) == 0, 10, "no upload in flight")


@pytest.mark.parametrize("how", ["abort(true)", "Upload.terminate"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_node_terminates_an_upload(
    daemon: Daemon, tmp_path: Path, protocol: str, how: str
) -> None:
    """An upload cut off as its second PATCH starts and terminated, by the
    same client (``upload.abort(true)``) or later from its URL
    (``tus.Upload.terminate``): DELETE is answered 204, then HEAD 404 and
    the upload is no longer listed."""
    interop = PROTOCOLS[protocol]
    path, _ = source(tmp_path, "gone.bin", 3 * MIB)
    common = (f"--file={path}", f"--chunk-size={MIB}", f"--abort-at={MIB + 1}")
    if how == "abort(true)":
        events = node_client(daemon.base, daemon, protocol, *common, "--terminate")
    else:
        cut = node_client(daemon.base, daemon, protocol, *common)
        assert cut[-1]["event"] == "aborted"
        events = node_client(
            daemon.base, daemon, protocol, f"--terminate-url={cut[-1]['url']}"
        )
    terminated = events[-1]
    assert terminated["event"] == "terminated"
    delete, deleted = exchange(events, "DELETE")
    assert (delete["method"], delete["interop"]) == ("DELETE", interop)
    assert deleted["status"] == 204
    status, _, _ = daemon.request(
        "HEAD",
        path_of(terminated["url"]),
        None,
        **{"Upload-Draft-Interop-Version": interop},
    )
    assert status == 404
    listed = [u["url"] for u in daemon.json("GET", "/uploads/")["results"]]
    assert not any(u.endswith(path_of(terminated["url"])) for u in listed)
    eventually(lambda: in_flight(daemon) == 0, 10, "no upload in flight")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_chromium_resumes_an_interrupted_upload_across_origins(
    browser: WebDriver,
    daemon: Daemon,
    page: Page,
    relay: Relay,
    protocol: str,
) -> None:
    """On a page of another origin (uploadd allows it by cors_origins),
    tus-js-client uploads a 6 MiB File in 1 MiB chunks, slowed so that it is
    aborted in its third PATCH; a new Upload finds it in localStorage, asks
    its offset and goes on from the server's, sending only the rest (counted
    by a relay); the client reads every field it needs across the origins
    and the stored file is the source's."""
    interop = PROTOCOLS[protocol]
    data = os.urandom(6 * MIB + 77)
    page.source = data
    name = f"browser-{protocol}.bin"
    settings = {
        "endpoint": f"http://127.0.0.1:{relay.port}/uploads/",
        "protocol": protocol,
        "chunkSize": MIB,
        "token": daemon.token,
        "name": name,
    }
    browser.set_script_timeout(120)
    browser.get(page.origin + "/")
    eventually(lambda: browser.execute_script("return typeof tus") == "object")
    throttle(browser, 4 * MIB)
    first: Events = browser.execute_async_script(
        "rufh.start(arguments[0]).then(arguments[1])",
        {**settings, "abortAt": 5 * MIB // 2},
    )
    aborted = first[-1]
    assert aborted["event"] == "aborted", first
    upload_url = aborted["url"]
    (create, created), *appends = exchanges_so_far(first)
    assert (create["interop"], created["status"], created["offset"]) == (
        interop,
        201,
        "0",
    )
    assert created["location"] == upload_url
    assert [a["offset"] for a, _ in appends] == [str(n * MIB) for n in range(3)]
    assert [r["offset"] for _, r in appends if r] == [str(MIB), str(2 * MIB)]
    offset = draft_offset(daemon, upload_url, interop)
    assert 2 * MIB <= offset < 3 * MIB

    throttle(browser, -1)
    relay.reset()
    second: Events = browser.execute_async_script(
        "rufh.resume(arguments[0]).then(arguments[1])", settings
    )
    assert second[0] == {"event": "resuming", "url": upload_url}
    assert second[-1] == {"event": "success", "url": upload_url}, second
    pairs = exchanges(second)
    (head, told), (resume, _) = pairs[:2]
    assert (head["method"], head["interop"]) == ("HEAD", interop)
    assert (told["status"], told["offset"]) == (204, str(offset))
    assert (resume["method"], resume["offset"]) == ("PATCH", str(offset))
    assert {r["method"] for r, _ in pairs[1:]} == {"PATCH"}
    assert len(data) - offset <= relay.up <= len(data) - offset + HEADS
    check_stored(daemon, pairs[-1][1], data, name)
    print(
        f"{protocol}: aborted after {aborted['sent']} bytes sent; server offset "
        f"{offset}; resumption sent {relay.up} bytes for {len(data) - offset}"
    )
    eventually(lambda: in_flight(daemon) == 0, 10, "no upload in flight")
