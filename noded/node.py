"""The node: its state and space, and the AMP responder serving the protocol."""

from __future__ import annotations

import hmac
import os
import secrets
import socket
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.protocols import amp

from noded import __version__, rsync
from noded.config import NodeConfig
from noded.files import NodeFiles, check_id
from noded.protocol import (
    Authenticate,
    Delete,
    Hello,
    Ping,
    Replicate,
    Stat,
    Unauthorized,
    UnknownFile,
)
from noded.protocol import proof as make_proof
from noded.reactor import IReactor
from noded.rsyncd import write_rsyncd_files
from noded.stats import NodeStats
from noded.threads import Runner

log = Logger()


@attrs.define
class Node:
    """What one storage node is and does, whoever is asking."""

    config: NodeConfig
    files: NodeFiles
    secret: bytes
    _run: Runner
    _reactor: IReactor
    http_url: str = ""
    rsync_port: int = 0
    accepting: bool = True
    stats: NodeStats = attrs.field(factory=NodeStats)

    async def refresh_accepting(self, state: str) -> None:
        """Close the rsync module to pushes while read-only or draining."""
        accepting = state == "up"
        if accepting != self.accepting:
            self.accepting = accepting
            await self._run(write_rsyncd_files, self.config, self.secret, accepting)
            log.info(
                "node {node_id} is {state}: replicas {verb}",
                node_id=self.node_id,
                state=state,
                verb="accepted" if accepting else "refused",
            )

    @property
    def node_id(self) -> str:
        return self.config.node.id or socket.gethostname()

    def state(self, free: int) -> str:
        configured = self.config.node.state
        if configured == "up" and free < self.config.node.reserve:
            return "read-only"
        return configured

    async def ping(self) -> dict[str, Any]:
        free, total = await self._run(self.files.space)
        state = self.state(free)
        await self.refresh_accepting(state)
        return {
            "node_id": self.node_id,
            "state": state,
            "free": free,
            "total": total,
            "reserved": self.config.node.reserve,
            "load": os.getloadavg()[0],
            "version": __version__,
            "zone": self.config.node.zone,
            "rsync_port": self.rsync_port,
            "http_url": self.http_url,
        }

    async def stat(self, file_id: str) -> dict[str, Any]:
        size, sha256 = await self._run(self.files.stat, file_id)
        return {"size": size, "sha256": sha256}

    async def delete(self, file_id: str) -> dict[str, Any]:
        deleted = await self._run(self.files.delete, check_id(file_id))
        if deleted:
            log.info("deleted replica {file_id}", file_id=file_id)
        return {"deleted": deleted}

    async def replicate(self, file_id: str, host: str, port: int) -> dict[str, Any]:
        """Push a held file to another node's rsync daemon (repair)."""
        source = self.files.path(file_id)
        if not await self._run(source.exists):
            raise UnknownFile(file_id)
        password_file = self.config.node.data_dir / "rsync.password"
        await self._run(rsync.write_password_file, password_file, self.secret)
        args = rsync.push_args(
            self.config.rsync.binary, source, host, port, file_id, password_file, 60, 10
        )
        started = self._reactor.seconds()
        outcome = await rsync.run(self._reactor, args, deadline=3600)
        self.stats.relays.labels("copied" if outcome.ok else "failed").inc()
        self.stats.relay_seconds.observe(self._reactor.seconds() - started)
        log.info(
            "replicated {file_id} to {host}:{port}: {meaning}",
            file_id=file_id,
            host=host,
            port=port,
            meaning=outcome.meaning,
        )
        return {"exit_code": outcome.code, "meaning": outcome.meaning}


class NodeProtocol(amp.AMP):
    """One peer's connection: nothing but Hello and Authenticate until the
    peer proves it holds the cluster secret."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self._node = node
        self._nonce: str | None = None
        self.authenticated = False

    def _check(self) -> None:
        if not self.authenticated:
            raise Unauthorized("authenticate first")

    @Hello.responder
    def hello(self) -> dict[str, str]:
        self._nonce = secrets.token_hex(16)
        return {"nonce": self._nonce, "node_id": self._node.node_id}

    @Authenticate.responder
    def authenticate(self, proof: str) -> dict[str, str]:
        nonce, self._nonce = self._nonce, None
        if nonce is None or not hmac.compare_digest(
            proof.encode(), make_proof(self._node.secret, nonce).encode()
        ):
            log.warn("refused an AMP peer: bad proof")
            self.transport.loseConnection()  # type: ignore[union-attr]
            raise Unauthorized("wrong cluster secret")
        self.authenticated = True
        return {}

    @Ping.responder
    def ping(self) -> Deferred[dict[str, Any]]:
        self._check()
        return Deferred.fromCoroutine(self._node.ping())

    @Stat.responder
    def stat(self, file_id: str) -> Deferred[dict[str, Any]]:
        self._check()
        return Deferred.fromCoroutine(self._node.stat(file_id))

    @Delete.responder
    def delete(self, file_id: str) -> Deferred[dict[str, Any]]:
        self._check()
        return Deferred.fromCoroutine(self._node.delete(file_id))

    @Replicate.responder
    def replicate(self, file_id: str, host: str, port: int) -> Deferred[dict[str, Any]]:
        self._check()
        return Deferred.fromCoroutine(self._node.replicate(file_id, host, port))


def cluster_secret(configured: str, data_dir: Path) -> bytes:
    """The configured cluster secret, or one generated into the data dir."""
    from noded.secret import token_secret

    if configured:
        return configured.encode("utf-8")
    return token_secret("", data_dir, name="cluster-secret")
