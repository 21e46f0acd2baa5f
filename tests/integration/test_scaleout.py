"""The whole of a scaled-out uploadd: PostgreSQL, RabbitMQ, two storage
nodes and three `twistd uploadd` instances behind HAProxy (round robin, no
stickiness), all real and on loopback, used as clients use them."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from tusclient import client as tus_client
from tusclient.uploader.uploader import Uploader

from tests.integration.broker import Broker, free_port
from tests.integration.daemon import Daemon, ctl, eventually, start, stop_process
from tests.integration.test_noded import SECRET, RunningNode, start_node
from tests.integration.test_webhooks import Receiver
from tests.postgres import empty_tables

pytestmark = pytest.mark.integration
CLIENTS = Path(__file__).resolve().parents[1] / "clients"

MIB = 1 << 20
AUTH_SECRET = "scale-out-test-auth-secret-0123456789abcdef"
INSTANCES = ("u1", "u2", "u3")
HAPROXY = "/usr/sbin/haproxy"


class Haproxy:
    """HAProxy in front of the instances: round robin, health checks on
    /health, bodies streamed; started in the foreground, stopped by pid."""

    def __init__(self, root: Path, ports: dict[str, int]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        servers = "\n".join(
            f"    server {name} 127.0.0.1:{port} check" for name, port in ports.items()
        )
        self.config = root / "haproxy.cfg"
        self.config.write_text(
            f"""global
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-request 20s
    retries 3
    option redispatch
frontend uploads
    bind 127.0.0.1:{self.port}
    default_backend uploadd
backend uploadd
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1
{servers}
"""
        )
        self.process = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(self.config)],
            stdout=(root / "haproxy.out").open("ab"),
            stderr=subprocess.STDOUT,
        )
        eventually(self._answers, what="HAProxy answering")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        with urllib.request.urlopen(self.base + "/health", timeout=2) as answer:
            return bool(answer.status == 200)

    def stop(self) -> None:
        stop_process(self.process)


class Whole:
    """Everything the tests use, and a way to kill and restart an instance."""

    def __init__(self, base: Path, database: str, broker: Broker) -> None:
        self.base, self.database, self.broker = base, database, broker
        self.nodes: dict[str, RunningNode] = {}
        self.instances: dict[str, Daemon] = {}
        self.ports = {name: free_port() for name in INSTANCES}
        self.haproxy: Haproxy | None = None

    def options(self, name: str) -> list[str]:
        return [
            f"--port={self.ports[name]}",
            f"--database-url={self.database}",
            f"--amqp-url={self.broker.url}",
            f"--auth-secret={AUTH_SECRET}",
            f"--cluster-secret={SECRET}",
            f"--cluster-instance={name}",
            "--cluster-replicas=2",
            "--cluster-ping-interval=0.5s",
            "--cluster-ping-timeout=0.5s",
            "--cluster-repair-after=2s",
            "--cluster-repair-interval=1s",
            "--webhooks-allow-private=true",
            "--uploads-checkpoint=1M",
        ]

    def start(self, name: str) -> Daemon:
        self.instances[name] = start(self.base / name, *self.options(name))
        return self.instances[name]

    def kill(self, name: str) -> None:
        process = self.instances[name].process
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def ctl(self, *args: str) -> str:
        return ctl(self.base / "u1", *args)

    @property
    def proxy(self) -> str:
        assert self.haproxy is not None
        return self.haproxy.base

    @property
    def token(self) -> str:
        return self.instances["u1"].token

    def log_lines(self, pattern: str) -> dict[str, int]:
        """How many lines of each instance's log match ``pattern``."""
        found = re.compile(pattern)
        return {
            name: sum(1 for line in daemon.log().splitlines() if found.search(line))
            for name, daemon in self.instances.items()
        }

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.database) as connection:
            return connection.execute(sql.encode(), args).fetchall()

    def get(self, path: str) -> bytes:
        """GET through HAProxy as the test user (redirects to nodes followed)."""
        request = urllib.request.Request(
            self.proxy + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return bytes(answer.read())


@pytest.fixture(scope="module")
def whole(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[Whole]:
    base = tmp_path_factory.mktemp("scaleout")
    broker = Broker(base / "rabbitmq", free_port(), free_port())
    running = Whole(base, postgres_url, broker)
    with pytest.MonkeyPatch.context() as env:
        # uploadctl reads these; the daemons get options.
        env.setenv("UPLOADD_DATABASE_URL", postgres_url)
        env.setenv("UPLOADD_AUTH_SECRET", AUTH_SECRET)
        try:
            broker.start()
            for name in ("n1", "n2"):
                node = running.nodes[name] = start_node(base / name, name, "z1")
                running.ctl("node", "add", name, f"127.0.0.1:{node.ports['amp']}")
            for name in INSTANCES:
                running.start(name)
            running.haproxy = Haproxy(base / "haproxy", running.ports)
            yield running
        finally:
            if running.haproxy is not None:
                running.haproxy.stop()
            for daemon in running.instances.values():
                daemon.stop()
            for node in running.nodes.values():
                node.stop()
            broker.stop()
            broker.stop_epmd()
            empty_tables(postgres_url)


def tus_uploader(whole: Whole, path: Path, chunk: int) -> Uploader:
    client = tus_client.TusClient(
        f"{whole.proxy}/uploads/", headers={"Authorization": f"Bearer {whole.token}"}
    )
    return client.uploader(
        str(path),
        chunk_size=chunk,
        metadata={"filename": path.name},
        retries=40,
        retry_delay=1,
    )


def upload_id(uploader: Uploader) -> str:
    assert uploader.url is not None
    return uploader.url.rstrip("/").rsplit("/", 1)[-1]


def test_tuspy_through_haproxy_lives_through_killed_instances(
    whole: Whole, tmp_path: Path
) -> None:
    """64 MiB in 1 MiB tus chunks, each to whichever instance HAProxy picks.
    A kill -9 of an instance that does not hold the upload goes unnoticed by
    the client; a kill -9 of the holder gets it 503s until the holder is
    back, then it finishes. The download is the same bytes."""
    source = tmp_path / "film.bin"
    data = os.urandom(64 * MIB)
    source.write_bytes(data)
    uploader = tus_uploader(whole, source, MIB)
    uploader.upload_chunk()
    (holder,) = whole.query(
        "SELECT holder FROM uploads WHERE id = %s", upload_id(uploader)
    )[0]
    assert holder in INSTANCES
    bystander = next(name for name in INSTANCES if name != holder)
    while uploader.offset < 16 * MIB:
        uploader.upload_chunk()
    whole.kill(bystander)
    while uploader.offset < 32 * MIB:
        uploader.upload_chunk()
    whole.start(bystander)
    while uploader.offset < 40 * MIB:
        uploader.upload_chunk()
    whole.kill(str(holder))
    restart = threading.Timer(4.0, whole.start, (holder,))
    restart.start()
    try:
        while uploader.offset < len(data):
            uploader.upload_chunk()
    finally:
        restart.join()
    file_id = upload_id(uploader)
    patches = whole.log_lines(f'"PATCH /uploads/{file_id} ')
    assert sum(1 for count in patches.values() if count) == 3, patches
    waited = whole.log_lines(rf'"(PATCH|HEAD) /uploads/{file_id} HTTP/1.1" 503')
    assert sum(waited.values()) >= 1, waited
    stored = json.loads(whole.get(f"/files/{file_id}"))
    assert stored["sha256"] == hashlib.sha256(data).hexdigest()
    assert whole.get(f"/files/{file_id}/content") == data


def test_tus_js_client_in_parallel_through_haproxy(
    whole: Whole, tmp_path: Path
) -> None:
    """tus-js-client with parallelUploads: 4 through HAProxy: its partial
    uploads open on different instances, and the final one joins them."""
    source = tmp_path / "parallel.bin"
    data = os.urandom(6 * MIB + 5)
    source.write_bytes(data)
    done = subprocess.run(
        [
            "node",
            str(CLIENTS / "tus_upload.mjs"),
            f"{whole.proxy}/uploads/",
            whole.token,
            str(source),
            "4",
            str(512 * 1024),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    file_id = done.stdout.decode().strip().rstrip("/").rsplit("/", 1)[-1]
    holders = whole.query(
        "SELECT DISTINCT holder FROM uploads WHERE concat = 'partial'"
        " AND id IN (SELECT jsonb_array_elements_text(parts::jsonb) FROM uploads"
        " WHERE id = %s)",
        file_id,
    )
    assert len(holders) > 1, holders
    assert whole.get(f"/files/{file_id}/content") == data


def test_fifty_uploads_at_once_are_each_stored_once_and_announced_once(
    whole: Whole, tmp_path: Path
) -> None:
    """50 tuspy uploads at once through HAProxy (their chunks spread over
    the instances): 50 files, each with its sha256; a webhook receiver gets
    file.stored once for each, whichever instance relays the outbox."""
    receiver = Receiver(204)
    try:
        request = urllib.request.Request(
            whole.proxy + "/webhooks",
            data=json.dumps({"url": receiver.url, "events": ["file.stored"]}).encode(),
            headers={
                "Authorization": f"Bearer {whole.token}",
                "Content-Type": "application/json",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 201
        sources = {}
        for number in range(50):
            path = tmp_path / f"many-{number:02d}.bin"
            path.write_bytes(os.urandom(MIB + 4096 * number))
            sources[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()

        def upload(name: str) -> str:
            uploader = tus_uploader(whole, tmp_path / name, 256 * 1024)
            uploader.upload()
            return upload_id(uploader)

        with ThreadPoolExecutor(50) as pool:
            ids = dict(zip(sources, pool.map(upload, sources), strict=True))
        rows = whole.query(
            "SELECT id, filename, sha256 FROM files WHERE filename LIKE 'many-%%'"
        )
        assert sorted(rows) == sorted(
            (ids[name], name, digest) for name, digest in sources.items()
        )

        def announced() -> Counter[str]:
            return Counter(
                json.loads(body)["data"]["file_id"]
                for _, body in receiver.got
                if json.loads(body)["data"]["filename"].startswith("many-")
            )

        eventually(lambda: len(announced()) == 50, what="50 files announced")
        time.sleep(2)  # time enough for a duplicate to arrive
        assert announced() == Counter({file_id: 1 for file_id in ids.values()})
    finally:
        receiver.close()


def test_a_dead_node_s_copies_are_repaired_once_across_the_instances(
    whole: Whole, tmp_path: Path
) -> None:
    """With two copies of every file on n1 and n2, n2 dies and n3 joins:
    each lost copy is made on n3 exactly once, though three instances run
    repair (one leads it), and every file ends with two copies."""
    files = whole.query("SELECT id FROM files")
    assert files
    eventually(
        lambda: (
            whole.query(
                "SELECT count(*) FROM files f WHERE (SELECT count(*) FROM replicas r"
                " WHERE r.file_id = f.id) < 2"
            )[0][0]
            == 0
        ),
        within=120,
        what="every file on both nodes",
    )
    # Copies repair made before (a file its replicator gave up on) are not
    # this test's: count the passes from here on.
    seen = {name: len(d.log().splitlines()) for name, d in whole.instances.items()}
    whole.nodes["n2"].stop()
    n3 = whole.nodes["n3"] = start_node(whole.base / "n3", "n3", "z1")
    whole.ctl("node", "add", "n3", f"127.0.0.1:{n3.ports['amp']}")
    eventually(
        lambda: (
            whole.query("SELECT count(*) FROM replicas WHERE node_id = 'n3'")[0][0]
            == len(files)
        ),
        within=180,
        what="every lost copy made again on n3",
    )
    passes = [
        (name, line)
        for name, daemon in whole.instances.items()
        for line in daemon.log().splitlines()[seen[name] :]
        if "repair pass:" in line
    ]
    made = sum(
        int(match)
        for _, line in passes
        for match in re.findall(r"repair pass: \d+ files, (\d+) copied", line)
    )
    assert made == len(files), (made, len(files), passes)
    held = [p for p in (whole.base / "n3").rglob("*") if p.is_file()]
    stored = [p for p in held if p.stem in {str(f[0]) for f in files}]
    assert len(stored) == len(files)
