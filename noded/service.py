"""Wiring a node: AMP server, download server, supervised rsync daemon."""

from __future__ import annotations

import functools
import json
from typing import Any, cast

from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from noded.config import NodeConfig
from noded.drain import Drain, exit_cleanly
from noded.files import NodeFiles
from noded.http import download_site
from noded.node import Node, NodeProtocol, cluster_secret
from noded.rsyncd import supervised
from noded.signing import url_key

log = Logger()


class NodeService(MultiService):
    def __init__(self, config: NodeConfig, reactor: Any) -> None:
        super().__init__()
        self.config = config
        self._reactor = reactor
        data_dir = config.node.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.secret = cluster_secret(config.cluster.secret, data_dir)
        self._pool = ThreadPool(minthreads=0, maxthreads=4, name="noded-io")
        run = functools.partial(deferToThreadPool, reactor, self._pool)
        self.files = NodeFiles(data_dir)
        self.node = Node(config, self.files, self.secret, run, reactor)
        self.node.rsync_port = config.rsync.port
        self._ports: list[IListeningPort] = []
        self.rsyncd = supervised(config, self.secret, reactor)
        self.rsyncd.setServiceParent(self)
        self._drain = Drain(reactor)

    def startService(self) -> None:
        self._pool.start()
        config = self.config
        amp_port = self._reactor.listenTCP(
            config.amp.port,
            Factory.forProtocol(lambda: NodeProtocol(self.node)),
            interface=config.amp.host,
        )
        site = download_site(
            self.files, url_key(self.secret), self._reactor, config.http, self._drain
        )
        http_port = self._reactor.listenTCP(
            config.http.port, site, interface=config.http.host
        )
        self._ports = [amp_port, http_port]
        amp_address = cast(IPv4Address, amp_port.getHost())
        http_address = cast(IPv4Address, http_port.getHost())
        self.node.http_url = (
            config.http.public_url.rstrip("/")
            or f"http://{http_address.host}:{http_address.port}"
        )
        super().startService()
        ports = {
            "amp": amp_address.port,
            "http": http_address.port,
            "rsync": config.rsync.port,
        }
        final = config.node.data_dir / "noded.ports"
        partial = final.with_suffix(".tmp")
        partial.write_text(json.dumps(ports))
        partial.replace(final)
        log.info(
            "node {node_id} (zone {zone!r}) serving AMP on {amp}, downloads on "
            "{http}, rsync on {rsync}",
            node_id=self.node.node_id,
            zone=config.node.zone,
            **ports,
        )

    def stopService(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        """Stop taking connections, let downloads in flight end (up to the
        grace), then stop the rsync daemon (transfers it has begun run on in
        their own processes) and wait for it."""
        ports, self._ports = self._ports, []
        for port in ports:
            closing = port.stopListening()
            if closing is not None:
                await closing
        cut = await self._drain.drain(self.config.http.shutdown_grace)
        log.info("node stopped ({count} downloads cut short)", count=cut)
        await _stopped(super().stopService())
        await self._children_exited()
        self._pool.stop()
        exit_cleanly(self._reactor)

    async def _children_exited(self, within: float = 10) -> None:
        """ProcessMonitor signals its children but does not wait for them;
        shutdown waits until the rsync daemon is gone."""
        waited = 0.0
        while self.rsyncd.protocols and waited < within:
            await deferLater(self._reactor, 0.05)
            waited += 0.05


async def _stopped(result: Any) -> None:
    if isinstance(result, Deferred):
        await result
