"""A ``twistd noded`` node as uploadd reaches it: AMP for questions, rsync for bytes.

Ping, Stat, Delete and Replicate (a node pushing its copy to another) are
AMP commands of ``noded/protocol.py`` over one authenticated connection per
node, made on first use and again after it is lost. A copy of uploadd's own
file is an rsync push into the node's write-only module, at the rsync port
and under the download URL the node reported in its last answered ping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
from twisted.protocols import amp
from zope.interface import implementer

from noded import rsync
from noded.protocol import Delete, Ping, Replicate, Stat, UnknownFile
from noded.reactor import IReactor
from noded.signing import signed_query
from uploadd.cluster.interface import CopyOutcome, Held, INodeClient, NodeStatus
from uploadd.errors import NotFound, Unprocessable
from uploadd.store.interface import FileRecord, NodeRecord

#: Opens an authenticated AMP connection to the node of a record.
Connector = Callable[[NodeRecord], Awaitable[amp.AMP]]


@attrs.frozen
class RsyncSettings:
    """How copies are pushed: rsync's own inactivity (``timeout``) and
    connect (``contimeout``) limits in seconds, and uploadd's wall-clock
    ``deadline`` after which the process is killed."""

    password_file: Path
    timeout: int = 60
    contimeout: int = 10
    deadline: float = 3600.0
    binary: str = "rsync"


def _outcome(outcome: rsync.Outcome) -> CopyOutcome:
    return CopyOutcome(outcome.ok, f"rsync: {outcome.meaning}", outcome.stderr)


@implementer(INodeClient)
@attrs.define(eq=False)
class AmpRsyncClient:
    """One noded node, reached over AMP and rsync."""

    record: NodeRecord
    _connect: Connector
    # Spawns rsync and times its deadline: IReactorProcess + IReactorTime.
    _reactor: IReactor
    # Signs download URLs (noded checks them with the same key).
    _key: bytes
    _rsync: RsyncSettings
    _connection: amp.AMP | None = attrs.field(default=None, init=False)
    # Where the node takes pushes and serves downloads, as its last ping said.
    rsync_port: int = attrs.field(default=0, init=False)
    http_url: str = attrs.field(default="", init=False)

    async def _call(self, command: type[amp.Command], **arguments: Any) -> Any:
        """``command`` on the node, over its connection (made when missing)."""
        if self._connection is None or self._connection.transport is None:
            self._connection = await self._connect(self.record)
        try:
            return await self._connection.callRemote(command, **arguments)
        except ConnectionError:
            self.disconnect()
            raise

    async def ping(self) -> NodeStatus:
        answer = await self._call(Ping)
        self.rsync_port, self.http_url = answer["rsync_port"], answer["http_url"]
        return NodeStatus(
            node_id=answer["node_id"],
            state=answer["state"],
            free=answer["free"],
            total=answer["total"],
            reserved=answer["reserved"],
            load=answer["load"],
            zone=answer["zone"],
            version=answer["version"],
        )

    async def stat(self, file_id: str) -> Held:
        try:
            answer = await self._call(Stat, file_id=file_id)
        except UnknownFile:
            raise NotFound(
                f"node {self.record.id} holds no copy of {file_id}"
            ) from None
        return Held(answer["size"], answer["sha256"])

    async def put(self, file_id: str, source: Path) -> CopyOutcome:
        settings = self._rsync
        args = rsync.push_args(
            settings.binary,
            source,
            self.record.host,
            self.rsync_port,
            file_id,
            settings.password_file,
            settings.timeout,
            settings.contimeout,
        )
        return _outcome(await rsync.run(self._reactor, args, settings.deadline))

    async def copy_from(self, file_id: str, holder: INodeClient) -> CopyOutcome:
        if not isinstance(holder, AmpRsyncClient):
            raise Unprocessable(
                f"node {self.record.id} can copy only from another noded node"
            )
        try:
            answer = await holder._call(
                Replicate, file_id=file_id, host=self.record.host, port=self.rsync_port
            )
        except UnknownFile:
            raise NotFound(
                f"node {holder.record.id} holds no copy of {file_id}"
            ) from None
        return _outcome(rsync.Outcome(answer["exit_code"], answer["meaning"]))

    async def delete(self, file_id: str) -> bool:
        answer = await self._call(Delete, file_id=file_id)
        return bool(answer["deleted"])

    def download_url(self, record: FileRecord, expires: int) -> str | None:
        if not self.http_url:
            return None
        query = signed_query(
            self._key,
            record.id,
            expires,
            record.filename,
            record.content_type,
            record.sha256,
        )
        return f"{self.http_url}/files/{quote(record.id)}?{query}"

    def disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.transport is not None:
            connection.transport.loseConnection()


@attrs.frozen
class AmpRsyncNodes:
    """The :data:`~uploadd.cluster.interface.NodeClientFactory` for noded
    nodes: every client shares one connector, reactor, key and rsync settings."""

    _connect: Connector
    _reactor: IReactor
    _key: bytes
    _rsync: RsyncSettings

    def __call__(self, record: NodeRecord) -> INodeClient:
        return AmpRsyncClient(
            record, self._connect, self._reactor, self._key, self._rsync
        )
