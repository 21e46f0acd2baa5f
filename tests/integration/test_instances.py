"""Two uploadd instances on one PostgreSQL and one RabbitMQ, with a storage
node: whatever one is asked, the answer is the one a single uploadd would
give, whichever instance holds the bytes, the upload or the client."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest

from tests.integration.broker import SERVER, Broker, free_port
from tests.integration.daemon import (
    PASSWORD,
    Daemon,
    EventStream,
    add_user,
    eventually,
    start,
)
from tests.integration.test_noded import SECRET, RunningNode, start_node
from tests.integration.test_transcode_tools import _write_pdf, need
from tests.integration.test_webhooks import Receiver

pytestmark = pytest.mark.integration

AUTH_SECRET = "two-instances-share-this-token-key"
PING = 0.5
#: Failed sign-ins for one user before more are refused (on every instance).
SIGNIN_LIMIT = 3
BOB_PASSWORD = "bob-password-long-enough"


@attrs.define
class Pair:
    """Instances ``a`` and ``b``, an admin's token, the node they share and
    where this module keeps its files."""

    a: Daemon
    b: Daemon
    admin: str
    node: RunningNode
    root: Path

    @property
    def both(self) -> tuple[Daemon, Daemon]:
        return self.a, self.b


Reply = tuple[int, dict[str, str], bytes]


def call(
    daemon: Daemon,
    method: str,
    path: str,
    body: bytes | None = None,
    token: str | None = None,
    **headers: str,
) -> Reply:
    """One request, redirects not followed; (status, lower-cased headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=60)
    try:
        sent = {"Authorization": f"Bearer {token or daemon.token}", **headers}
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


def fetch(url: str) -> tuple[int, bytes]:
    """GET an absolute http URL (a node's signed one) without a token."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=60
    )
    try:
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def as_json(reply: Reply, status: int = 200) -> Any:
    code, _, body = reply
    assert code == status, (code, body)
    return json.loads(body)


def put(daemon: Daemon, name: str, data: bytes, **headers: str) -> dict[str, Any]:
    shown: dict[str, Any] = as_json(
        call(daemon, "PUT", f"/files/{name}", data, **headers), 201
    )
    return shown


def details(daemon: Daemon, file_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = as_json(call(daemon, "GET", f"/files/{file_id}"))
    return shown


def listed(daemon: Daemon) -> set[str]:
    page = as_json(call(daemon, "GET", "/files?limit=1000"))
    return {f["id"] for f in page["results"]}


def nodes_seen(daemon: Daemon, admin: str) -> dict[str, dict[str, Any]]:
    table = as_json(call(daemon, "GET", "/admin/nodes", token=admin))
    return {node["id"]: node for node in table["results"]}


def on_node(pair: Pair, file_id: str) -> None:
    """Wait until both instances see ``file_id``'s copy on the node."""
    for daemon in pair.both:
        eventually(
            lambda d=daemon: details(d, file_id)["replicas"] == ["n1"],  # type: ignore[misc]
            30,
            f"{file_id} on n1 as {daemon.base} sees it",
        )


def sign_in(daemon: Daemon, username: str, password: str) -> Reply:
    body = json.dumps({"username": username, "password": password}).encode()
    return call(
        daemon, "POST", "/auth/token", body, **{"Content-Type": "application/json"}
    )


@contextlib.contextmanager
def private_broker(root: Path) -> Iterator[Broker]:
    if not SERVER.exists():
        pytest.fail("rabbitmq-server is not installed (make setup installs it)")
    broker = Broker(root, free_port(), free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        broker.stop_epmd()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Pair]:
    """Instances a and b (one PostgreSQL database, one RabbitMQ, one auth and
    one cluster secret) and node n1, added at runtime through a's admin API;
    everything stopped by pid at the end."""
    root = tmp_path_factory.mktemp("instances")
    options = (
        f"--database-url={postgres_url}",
        f"--auth-secret={AUTH_SECRET}",
        f"--cluster-secret={SECRET}",
        f"--cluster-ping-interval={PING}s",
        f"--cluster-ping-timeout={PING}s",
        "--cluster-replicas=1",
        "--cluster-repair-interval=1s",
        # Each instance keeps what it received: a delete through the other
        # must still take it away.
        "--cluster-keep-local=true",
        "--webhooks-allow-private=true",
        f"--auth-signin-failures-per-user={SIGNIN_LIMIT}",
    )
    with (
        pytest.MonkeyPatch.context() as env,
        private_broker(root / "rabbitmq") as broker,
        contextlib.ExitStack() as stack,
    ):
        # uploadctl (users, tokens) works on the same database and secret.
        env.setenv("UPLOADD_DATABASE_URL", postgres_url)
        env.setenv("UPLOADD_AUTH_SECRET", AUTH_SECRET)
        node = start_node(root / "n1", "n1", "z1")
        stack.callback(node.stop)
        running = []
        for name in ("a", "b"):
            daemon = start(
                root / name,
                *options,
                f"--amqp-url={broker.url}",
                f"--cluster-instance={name}",
            )
            stack.callback(daemon.stop)
            running.append(daemon)
        a, b = running
        admin = add_user(a.data_dir, "root", "admin", "root-password")
        add_user(a.data_dir, "bob", "write", BOB_PASSWORD)
        added = call(
            a, "POST", "/admin/nodes",
            json.dumps({"id": "n1", "host": "127.0.0.1", "port": node.ports["amp"]})
            .encode(),
            token=admin, **{"Content-Type": "application/json"},
        )  # fmt: skip
        assert added[0] == 201, added
        for daemon in running:
            eventually(
                lambda d=daemon: nodes_seen(d, admin)["n1"]["health"] == "up",  # type: ignore[misc]
                20,
                f"n1 UP as {daemon.base} sees it",
            )
        yield Pair(a, b, admin, node, root)


def test_a_token_from_signing_in_on_one_instance_works_on_the_other(
    pair: Pair,
) -> None:
    """POST /auth/token on a; the token lists files on b, and the other way."""
    for signer, user in ((pair.a, pair.b), (pair.b, pair.a)):
        token = as_json(sign_in(signer, "alice", PASSWORD))["token"]
        mine = as_json(call(user, "GET", "/files", token=token))
        assert mine == as_json(call(user, "GET", "/files"))
        assert call(user, "GET", "/files", token=token + "x")[0] == 401


def test_failed_sign_ins_count_on_every_instance(pair: Pair) -> None:
    """Failed passwords for one user on a count on b too: past the limit
    both refuse (429) even the right password, as one instance would."""
    for _ in range(SIGNIN_LIMIT):
        assert sign_in(pair.a, "bob", "wrong")[0] == 401
    assert sign_in(pair.a, "bob", BOB_PASSWORD)[0] == 429
    # The right password costs no failure: ask until b has heard of a's.
    refused = eventually(
        lambda: sign_in(pair.b, "bob", BOB_PASSWORD)[0] == 429,
        10,
        "b refusing bob after a's failures",
    )
    assert refused


def test_files_are_listed_shown_and_deleted_through_either_instance(
    pair: Pair,
) -> None:
    """A PUT on a and a multipart POST on b are listed and shown alike on
    both; deleted through b, the file from a is gone on both, a's own copy
    of its bytes too."""
    a, b = pair.both
    first = put(a, "from-a.txt", b"stored through a\n")
    form = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="from-b.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"stored through b\n\r\n--XyZ--\r\n"
    )
    second = as_json(
        call(b, "POST", "/files", form,
             **{"Content-Type": "multipart/form-data; boundary=XyZ"}),
        201,
    )  # fmt: skip
    assert second["filename"] == "from-b.txt"
    for daemon in pair.both:
        assert {first["id"], second["id"]} <= listed(daemon)
        for made in (first, second):
            shown = details(daemon, made["id"])
            for field in ("filename", "size", "sha256", "md5", "content_type"):
                assert shown[field] == made[field]
    on_node(pair, first["id"])
    local = a.data_dir / "files" / first["id"][:2] / first["id"]
    assert local.exists()

    assert call(b, "DELETE", f"/files/{first['id']}")[0] == 204
    for daemon in pair.both:
        assert call(daemon, "GET", f"/files/{first['id']}")[0] == 404
        assert first["id"] not in listed(daemon)
        assert second["id"] in listed(daemon)
    eventually(lambda: not local.exists(), 10, "a's copy of the deleted file gone")


def test_versions_made_on_either_instance_are_listed_on_both(pair: Pair) -> None:
    """A new version uploaded through b of a file uploaded through a is a
    version of it on both."""
    original = put(pair.a, "report.txt", b"version 1\n")
    newer = put(pair.b, f"report.txt?parent={original['id']}", b"version 2\n")
    assert newer["parent"] == original["id"]
    for daemon in pair.both:
        versions = details(daemon, original["id"])["versions"]
        assert [v["id"] for v in versions] == [newer["id"]]


def test_downloads_are_redirected_to_the_node_by_either_instance(
    pair: Pair,
) -> None:
    """A file uploaded through a, copied to n1, is a signed redirect to n1
    from both instances, and the node serves its bytes."""
    data = os.urandom(300_000)
    made = put(pair.a, "photo.bin", data)
    on_node(pair, made["id"])
    for daemon in pair.both:
        status, headers, _ = call(daemon, "GET", f"/files/{made['id']}/content")
        assert status == 302
        location = headers["location"]
        assert f":{pair.node.ports['http']}/" in location and "sig=" in location
        assert fetch(location) == (200, data)


def test_renditions_made_for_an_upload_through_b_are_served_by_a(
    pair: Pair,
) -> None:
    """A PDF uploaded through b becomes slides (whichever instance's worker
    takes the job) that a shows READY and serves."""
    need("pdftoppm")
    pdf = pair.root / "deck.pdf"
    _write_pdf(pdf, 2)
    made = put(
        pair.b, "deck.pdf", pdf.read_bytes(), **{"Content-Type": "application/pdf"}
    )
    ready = eventually(
        lambda: (shown := details(pair.a, made["id"]))["status"] != "PENDING" and shown,
        60,
        "the deck's rendition done",
    )
    assert ready["status"] == "READY", ready
    assert len(ready["slides"]) == 2
    for url in ready["slides"]:
        path = urlsplit(url).path
        for daemon in pair.both:
            body = eventually(
                lambda d=daemon, p=path: (  # type: ignore[misc]
                    (r := call(d, "GET", p))[0] == 302 and fetch(r[1]["location"])[1]
                ),
                30,
                f"slide {path} from {daemon.base}",
            )
            assert body[:2] == b"\xff\xd8"


def test_a_webhook_made_on_a_fires_once_for_an_upload_through_b(pair: Pair) -> None:
    """A webhook made through a is called exactly once for an upload through
    b, and its delivery log (asked of either) says delivered at once."""
    receiver = Receiver(204)
    hook: dict[str, Any] = {}

    def calls(file_id: str) -> list[dict[str, Any]]:
        found = [json.loads(body) for _, body in receiver.got]
        return [c for c in found if c["data"]["file_id"] == file_id]

    try:
        hook = as_json(
            call(pair.a, "POST", "/webhooks",
                 json.dumps({"url": receiver.url, "events": ["file.stored"]})
                 .encode(),
                 **{"Content-Type": "application/json"}),
            201,
        )  # fmt: skip
        made = put(pair.b, "hooked.txt", b"tell the hook\n")
        (called,) = eventually(lambda: calls(made["id"]), 20, "the webhook called")
        for daemon in pair.both:
            log = eventually(
                lambda d=daemon: [  # type: ignore[misc]
                    entry
                    for entry in as_json(
                        call(d, "GET", f"/webhooks/{hook['id']}/deliveries")
                    )["results"]
                    if entry["event_id"] == called["event_id"]
                ],
                10,
                f"the delivery in {daemon.base}'s log",
            )
            assert [(d["delivered"], d["attempts"]) for d in log] == [(True, 1)]
        time.sleep(2)  # a second call, if any, would have come
        assert len(calls(made["id"])) == 1
    finally:
        if hook:
            call(pair.a, "DELETE", f"/webhooks/{hook['id']}")
        receiver.close()


def test_failed_work_shows_in_the_admin_console_of_each_instance(pair: Pair) -> None:
    """A transcode failing for an upload through b (whichever instance's
    worker ran it) is among the recent failures of both admin consoles."""
    need("pdftoppm")
    made = put(pair.b, "broken.pdf", b"not a PDF at all\n" * 8,
               **{"Content-Type": "application/pdf"})  # fmt: skip
    eventually(
        lambda: details(pair.a, made["id"])["status"] == "FAILED",
        60,
        "the broken PDF's rendition failed",
    )
    for daemon in pair.both:
        eventually(
            lambda d=daemon: any(  # type: ignore[misc]
                f["kind"] == "transcode" and f["file_id"] == made["id"]
                for f in as_json(call(d, "GET", "/admin/status", token=pair.admin))[
                    "recent_failures"
                ]
            ),
            10,
            f"the failure in {daemon.base}'s console",
        )


def test_both_consoles_show_the_repair_leaders_last_pass(pair: Pair) -> None:
    """One instance leads repair; both admin consoles show its last pass."""

    def last(daemon: Daemon) -> dict[str, Any]:
        table = as_json(call(daemon, "GET", "/admin/nodes", token=pair.admin))
        found: dict[str, Any] = table["last_repair"]
        return found

    seen = eventually(
        lambda: (passed := last(pair.a)) and passed == last(pair.b) and passed,
        10,
        "the same last repair pass in both consoles",
    )
    assert seen["examined"] >= 1


def test_a_node_added_through_a_is_used_and_removed_through_b(pair: Pair) -> None:
    """n2 added through a's admin API is UP in b's console; drained through
    b it is draining in a's; removed through b it is gone from a's."""
    extra = start_node(pair.root / "n2", "n2", "z2")
    try:
        added = call(
            pair.a, "POST", "/admin/nodes",
            json.dumps({"id": "n2", "host": "127.0.0.1", "port": extra.ports["amp"]})
            .encode(),
            token=pair.admin, **{"Content-Type": "application/json"},
        )  # fmt: skip
        assert added[0] == 201, added
        eventually(
            lambda: nodes_seen(pair.b, pair.admin).get("n2", {}).get("health") == "up",
            20,
            "n2 UP in b's console",
        )
        changed = call(
            pair.b, "PATCH", "/admin/nodes/n2", b'{"mode": "draining"}',
            token=pair.admin, **{"Content-Type": "application/json"},
        )  # fmt: skip
        assert changed[0] == 200, changed
        eventually(
            lambda: nodes_seen(pair.a, pair.admin)["n2"]["mode"] == "draining",
            20,
            "n2 draining in a's console",
        )
        assert call(pair.b, "DELETE", "/admin/nodes/n2", token=pair.admin)[0] == 204
        eventually(
            lambda: "n2" not in nodes_seen(pair.a, pair.admin),
            20,
            "n2 gone from a's console",
        )
    finally:
        extra.stop()


def test_progress_of_an_upload_into_a_is_seen_on_b(pair: Pair) -> None:
    """While a slow PUT with X-Progress-ID streams into a, b's /progress
    shows it uploading with the bytes a has; once it ends b shows it done
    with its file."""
    total, first = 600_000, 200_000
    data = os.urandom(total)
    key = "slow-put-1"
    with socket.create_connection(("127.0.0.1", pair.a.port), timeout=30) as sock:
        head = (
            f"PUT /files/slow.bin HTTP/1.1\r\nHost: a\r\n"
            f"Authorization: Bearer {pair.a.token}\r\nX-Progress-ID: {key}\r\n"
            f"Content-Length: {total}\r\n\r\n"
        )
        sock.sendall(head.encode() + data[:first])
        seen = eventually(
            lambda: (
                (shown := as_json(call(pair.b, "GET", f"/progress/{key}")))
                and shown["received"] >= first
                and shown
            ),
            10,
            "b seeing the first bytes",
        )
        assert seen["state"] == "uploading"
        assert seen["expected"] == total and seen["received"] < total
        assert as_json(call(pair.b, "GET", f"/progress?X-Progress-ID={key}")) == seen
        sock.sendall(data[first:])
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201")
    file_id = json.loads(answer.partition(b"\r\n\r\n")[2])["id"]
    done = eventually(
        lambda: (
            (shown := as_json(call(pair.b, "GET", f"/progress/{key}")))["state"]
            == "done"
            and shown
        ),
        10,
        "b seeing the upload done",
    )
    assert (done["received"], done["percent"], done["file_id"]) == (
        total,
        100.0,
        file_id,
    )
    # Another user's key is not theirs to see, on either instance.
    other = as_json(sign_in(pair.a, "root", "root-password"))["token"]
    assert call(pair.b, "GET", f"/progress/{key}", token=other)[0] == 404


def test_an_event_stream_on_one_instance_sees_uploads_through_the_other(
    pair: Pair,
) -> None:
    """An /events stream on a gets file.stored for an upload through b, and
    one on b for an upload through a."""
    for watched, uploader in ((pair.a, pair.b), (pair.b, pair.a)):
        stream = EventStream(watched.port, watched.token)
        try:
            time.sleep(0.5)  # the stream is registered before the upload
            made = put(uploader, "seen.txt", b"watch this\n")
            stored = next(
                (
                    data
                    for topic, data, _ in stream.messages(10)
                    if topic == "file.stored" and data["file_id"] == made["id"]
                ),
                None,
            )
        finally:
            stream.close()
        assert stored is not None and stored["filename"] == "seen.txt"
