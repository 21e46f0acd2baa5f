"""Test helpers: an in-memory uploadd (StubTreq, Clock, MemoryStore) and bodies."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import attrs
from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IProcessProtocol,
    IProcessTransport,
    IReactorTime,
)
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.http_headers import Headers
from twisted.web.server import Site
from zope.interface import implementer

from noded.reactor import IReactor
from noded.threads import Runner, run_inline
from uploadd.auth.passwords import hash_password
from uploadd.auth.tokens import Principal
from uploadd.config import load_config
from uploadd.service import Parts, build
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import FileRecord
from uploadd.store.memory import MemoryStore
from uploadd.workers.webhooks import Poster

T = TypeVar("T")
SECRET = b"s" * 32
PASSWORD = "correct horse battery"


def now(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that completes without waiting (in-memory fakes)."""
    results: list[T] = []
    Deferred.fromCoroutine(coroutine).addCallback(results.append)
    assert results, "the coroutine waited on something"
    return results[0]


@implementer(IReactor)
class FakeReactor(MemoryReactorClock):
    """Every part of IReactor in memory, for parts that need more than a
    Clock: time as a Clock, listens and connects recorded (MemoryReactor),
    processes recorded and never run, thread results delivered at once."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[bytes | str, list[Any]]] = []

    def spawnProcess(
        self,
        processProtocol: IProcessProtocol,
        executable: bytes | str,
        args: Any,
        env: Any = None,
        path: Any = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool = False,
        childFDs: Any = None,
    ) -> IProcessTransport:
        self.spawned.append((executable, list(args)))
        raise NotImplementedError("a FakeReactor runs no processes")

    def callFromThread(self, callable: Any, *args: Any, **kwargs: Any) -> None:
        callable(*args, **kwargs)


@attrs.frozen
class Reply:
    code: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name.encode())
        return values[0].decode("latin-1") if values else None


@attrs.define
class Harness:
    """An uploadd graph in memory, with a StubTreq client bound to its Site."""

    parts: Parts
    store: MemoryStore
    clock: Clock
    client: StubTreq
    data_dir: Path

    def user(self, name: str, scopes: str = "write", ttl: float = 3600) -> str:
        """Create ``name`` with ``scopes``; return a bearer token for it."""
        user = now(
            self.store.add_user(
                name, hash_password(PASSWORD), frozenset(scopes.split()), 0.0
            )
        )
        principal = Principal(user.id, user.username, user.scopes)
        return self.parts.tokens.issue(principal, ttl)

    async def call(self, method: str, path: str, **options: Any) -> Reply:
        """Send a request and read the whole response, pumping the memory pipe
        (responses produced after render returns need StubTreq.flush)."""
        client: Any = self.client  # StubTreq sets its verbs at runtime
        pending = client.request(method, f"http://uploadd{path}", **options)
        response = await self._pumped(pending)
        body = await self._pumped(response.content())
        return Reply(response.code, response.headers, body)

    async def _pumped(self, pending: Deferred[T]) -> T:
        return await pumped(self.client, pending)

    def staged(self) -> list[Path]:
        return sorted(self.parts.blobs.incoming.glob("*"))


async def pumped(client: StubTreq, pending: Deferred[T]) -> T:
    """Await ``pending`` while moving bytes through StubTreq's memory pipe.

    Pull producers (static file bodies) are driven by the global reactor's
    cooperator, so the reactor turns between flushes.
    """
    from twisted.internet import reactor

    done: list[bool] = []

    def settled(result: object) -> object:
        done.append(True)
        return result

    pending.addBoth(settled)
    for _ in range(2000):
        client.flush()
        if done:
            return await pending
        await deferLater(reactor, 0.001)
    raise AssertionError("no response within 2000 reactor turns")


def harness(
    tmp_path: Path,
    runner: Runner = run_inline,
    store: MemoryStore | None = None,
    settings: dict[tuple[str, str], str] | None = None,
    poster: Poster | None = None,
) -> Harness:
    """An in-memory uploadd; ``settings`` maps (section, key) to a value."""
    config = load_config(
        environ={},
        options={
            ("storage", "data_dir"): str(tmp_path / "data"),
            ("auth", "secret"): SECRET.decode(),
            **(settings or {}),
        },
    )
    clock = FakeReactor()
    store = store if store is not None else MemoryStore()
    parts = build(
        config, clock, store, SECRET, runner, cluster_secret=SECRET, poster=poster
    )
    parts.blobs.prepare()
    client = StubTreq(parts.router)
    # StubTreq builds a plain Site; swap in ours so requests meet the ingest
    # gate exactly as they do on a real socket.
    client._agent._serverFactory = parts.site
    return Harness(parts, store, clock, client, config.storage.data_dir)


def auth(token: str) -> dict[bytes, list[bytes]]:
    return {b"authorization": [b"Bearer " + token.encode()]}


def multipart(
    fields: dict[str, str], filename: str, data: bytes, boundary: str = "xYzZY"
) -> tuple[bytes, bytes]:
    """A multipart/form-data body and its Content-Type."""
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n".encode()
        )
    parts.append(
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}".encode()


@attrs.define
class Connection:
    """A Site's protocol on an in-memory transport: bytes in, bytes out."""

    protocol: Any
    transport: StringTransport

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def output(self) -> bytes:
        return bytes(self.transport.value())

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of the first response."""
        head, _, body = self.output().partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        return (
            int(lines[0].split()[1]),
            {name.lower(): value for name, value in headers.items()},
            body,
        )


def connection(site: Site) -> Connection:
    """A client connection to ``site`` over a StringTransport."""
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8080))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
    protocol.makeConnection(transport)
    return Connection(protocol, transport)


def stored_file(
    store: MemoryStore, blobs: BlobStore, clock: IReactorTime, data: bytes
) -> FileRecord:
    """A file of alice's (user 1) with ``data`` as its bytes in ``blobs``,
    recorded in ``store`` and replicated nowhere yet."""
    record = FileRecord(
        uuid.uuid4().hex,
        1,
        "f.bin",
        len(data),
        hashlib.sha256(data).hexdigest(),
        hashlib.md5(data).hexdigest(),
        "application/octet-stream",
        clock.seconds(),
    )
    now(store.add_file(record))
    path = blobs.path(record.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return record
