"""Wiring a node: AMP server, download server, supervised rsync daemon."""

from __future__ import annotations

import json

from twisted.application.service import IService
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from noded.config import NodeConfig
from noded.drain import Drain, exit_cleanly
from noded.files import NodeFiles
from noded.http import download_site
from noded.lifecycle import InOrder, Listener, Step, fail_start
from noded.metrics import MetricsPage
from noded.node import Node, NodeProtocol, cluster_secret
from noded.reactor import IReactor
from noded.rsyncd import supervised
from noded.signing import url_key
from noded.stats import NodeStats
from noded.threads import pool_runner

log = Logger()


class NodeService(InOrder):
    """The node daemon, ``twistd noded``: a tree whose children start in
    this order, each once the one before is ready, and stop in the reverse
    order:

    - ``threads``: the file thread pool (stops last)
    - ``rsyncd exited``: on stop, waits until the rsync daemon is gone
    - ``rsyncd``: the supervised rsync daemon (ProcessMonitor)
    - ``downloads``: the signed-download listener on ``[http] endpoint``
      (or host and port), with ``/metrics``; its stop closes the port, then
      lets downloads in flight finish (``[http] shutdown_grace``)
    - ``download url``: the URL uploadd is told, known once downloads listen
    - ``amp``: the node protocol on ``[amp] endpoint`` (or host and port);
      it closes first, and answers no ping before downloads are served

    Once all are up, ``<data_dir>/noded.ports`` is written; a start that
    fails logs a critical line and exits 1.
    """

    def __init__(self, config: NodeConfig, reactor: IReactor) -> None:
        super().__init__()
        self.name = "noded"
        self.config = config
        self._reactor = reactor
        data_dir = config.node.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.secret = cluster_secret(config.cluster.secret, data_dir)
        pool = ThreadPool(minthreads=0, maxthreads=4, name="noded-io")
        run = pool_runner(reactor, pool)
        self.files = NodeFiles(data_dir)
        self.stats = NodeStats()
        self.node = Node(
            config, self.files, self.secret, run, reactor, stats=self.stats
        )
        self.node.rsync_port = config.rsync.port
        self._drain = Drain(reactor)
        self.rsyncd = supervised(config, self.secret, reactor)
        self.rsyncd.name = "rsyncd"
        refresh = self.stats.watch(
            self.files, self.node.state, config.node.reserve, run, reactor
        )
        site = download_site(
            self.files,
            url_key(self.secret),
            reactor,
            config.http,
            self._drain,
            self.stats,
            MetricsPage(self.stats.registry, config.metrics.token, refresh),
        )
        self.downloads = Listener(
            "downloads", reactor, config.http.listen_on, site, self._drained
        )
        self.amp = Listener(
            "amp",
            reactor,
            config.amp.listen_on,
            Factory.forProtocol(lambda: NodeProtocol(self.node)),
        )
        children: tuple[IService, ...] = (
            Step("threads", pool.start, pool.stop),
            Step("rsyncd exited", stop=self._rsyncd_exited),
            self.rsyncd,
            self.downloads,
            Step("download url", self._download_url),
            self.amp,
        )
        for child in children:
            child.setServiceParent(self)

    def startService(self) -> None:
        super().startService()
        assert self.started is not None
        self.started.addCallback(lambda _: self._serving())
        self.started.addErrback(fail_start, "noded", self._reactor)

    def _download_url(self) -> None:
        self.node.http_url = (
            self.config.http.public_url.rstrip("/") or self.downloads.url()
        )

    def _serving(self) -> None:
        config = self.config
        # Numbers for TCP listeners, a path for a UNIX socket.
        ports = {
            "amp": self.amp.port_or_path(),
            "http": self.downloads.port_or_path(),
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

    async def _drained(self) -> None:
        """The download listener has closed: let downloads in flight end (up
        to the grace) before the rsync daemon stops."""
        cut = await self._drain.drain(self.config.http.shutdown_grace)
        log.info("node stopped ({count} downloads cut short)", count=cut)

    async def _rsyncd_exited(self, within: float = 10) -> None:
        """ProcessMonitor signals its children but does not wait for them;
        shutdown waits until the rsync daemon is gone."""
        waited = 0.0
        while self.rsyncd.protocols and waited < within:
            await deferLater(self._reactor, 0.05)
            waited += 0.05

    def stopService(self) -> Deferred[None]:
        stopping = super().stopService()
        stopping.addCallback(lambda _: exit_cleanly(self._reactor))
        return stopping
