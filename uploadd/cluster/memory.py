"""The in-memory node twin: a storage node held in a dict, for unit tests.

It answers as a noded node does (space from a set capacity, read-only below
its reserve, copies refused unless ``up``, a copy that does not fit fails)
and has a switch for each way a real node lets uploadd down, so the
replicator, repairer and pinger can be tested without AMP, rsync or disks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from zope.interface import implementer

from noded.signing import signed_query
from uploadd.cluster.interface import CopyOutcome, Held, INodeClient, NodeStatus
from uploadd.errors import NotFound, Unprocessable
from uploadd.store.interface import FileRecord, NodeRecord


@implementer(INodeClient)
@attrs.define(eq=False)
class MemoryNode:
    """A node whose files are ``files``; what it reports and how it fails
    are plain fields a test sets:

    - ``reachable = False``: every call fails at once (connection refused);
    - ``answering = False``: every call waits until cancelled or :meth:`lose`;
    - ``holding = True``: copies wait for :meth:`land` (a transfer under way);
    - ``copy_failure``: every copy fails, for this reason;
    - ``corrupting = True``: copies land with their last byte changed.
    """

    node_id: str
    zone: str = ""
    capacity: int = 10**12
    reserve: int = 0
    state: str = "up"
    load: float = 0.0
    http_url: str = ""
    key: bytes = b""
    files: dict[str, bytes] = attrs.field(factory=dict)
    reachable: bool = True
    answering: bool = True
    holding: bool = False
    copy_failure: str = ""
    corrupting: bool = False
    _waiting: list[Deferred[None]] = attrs.field(factory=list)
    _copying: list[tuple[str, bytes, Deferred[CopyOutcome]]] = attrs.field(factory=list)

    @property
    def free(self) -> int:
        return self.capacity - sum(len(data) for data in self.files.values())

    def reported_state(self) -> str:
        """``state``, or ``read-only`` once free space is below the reserve."""
        if self.state == "up" and self.free < self.reserve:
            return "read-only"
        return self.state

    def land(self) -> None:
        """Finish the copies under way."""
        copying, self._copying = self._copying, []
        for file_id, data, done in copying:
            done.callback(self._write(file_id, data))

    def lose(self) -> None:
        """The node is gone: calls waiting fail, copies under way fail, and
        every call from now on is refused."""
        self.reachable = False
        waiting, self._waiting = self._waiting, []
        for call in waiting:
            call.errback(ConnectionLost(f"node {self.node_id} was lost"))
        copying, self._copying = self._copying, []
        for _, _, done in copying:
            done.callback(CopyOutcome(False, "the node was lost mid-copy"))

    async def _reach(self) -> None:
        if not self.reachable:
            raise ConnectionRefusedError(self.node_id)
        if not self.answering:
            call: Deferred[None] = Deferred(
                lambda cancelled: self._waiting.remove(cancelled)
            )
            self._waiting.append(call)
            await call

    async def ping(self) -> NodeStatus:
        await self._reach()
        return NodeStatus(
            node_id=self.node_id,
            state=self.reported_state(),
            free=self.free,
            total=self.capacity,
            reserved=self.reserve,
            load=self.load,
            zone=self.zone,
            version="memory",
        )

    async def stat(self, file_id: str) -> Held:
        await self._reach()
        data = self.files.get(file_id)
        if data is None:
            raise NotFound(f"node {self.node_id} holds no copy of {file_id}")
        return Held(len(data), hashlib.sha256(data).hexdigest())

    async def put(self, file_id: str, source: Path) -> CopyOutcome:
        await self._reach()
        # Blocking, on purpose: a twin's files are a few bytes in a test.
        return await self._copy(file_id, source.read_bytes())  # noqa: ASYNC240

    async def copy_from(self, file_id: str, holder: INodeClient) -> CopyOutcome:
        await self._reach()
        if not isinstance(holder, MemoryNode):
            raise Unprocessable(
                f"node {self.node_id} can copy only from another memory node"
            )
        await holder._reach()
        data = holder.files.get(file_id)
        if data is None:
            raise NotFound(f"node {holder.node_id} holds no copy of {file_id}")
        return await self._copy(file_id, data)

    async def _copy(self, file_id: str, data: bytes) -> CopyOutcome:
        if not self.holding:
            return self._write(file_id, data)
        done: Deferred[CopyOutcome] = Deferred()
        self._copying.append((file_id, data, done))
        return await done

    def _write(self, file_id: str, data: bytes) -> CopyOutcome:
        if self.copy_failure:
            return CopyOutcome(False, self.copy_failure)
        if self.reported_state() != "up":
            return CopyOutcome(False, f"the node takes no copies: {self.state}")
        if self.free < len(data):
            return CopyOutcome(False, "the node has no room for the copy")
        if self.corrupting:
            data = data[:-1] + bytes([data[-1] ^ 1]) if data else b"\0"
        self.files[file_id] = data
        return CopyOutcome(True, "copied")

    async def delete(self, file_id: str) -> bool:
        await self._reach()
        return self.files.pop(file_id, None) is not None

    def download_url(self, record: FileRecord, expires: int) -> str | None:
        if not self.http_url:
            return None
        query = signed_query(
            self.key,
            record.id,
            expires,
            record.filename,
            record.content_type,
            record.sha256,
        )
        return f"{self.http_url}/files/{quote(record.id)}?{query}"

    def disconnect(self) -> None:
        """Nothing to let go: the twin has no connection."""


@attrs.define
class MemoryNodes:
    """A :data:`~uploadd.cluster.interface.NodeClientFactory` over twins by
    node id: a node registered without a twin gets a fresh one."""

    twins: dict[str, MemoryNode] = attrs.field(factory=dict)

    def __call__(self, record: NodeRecord) -> INodeClient:
        return self.twins.setdefault(record.id, MemoryNode(record.id))
