"""Wiring: one uploadd process built from its Config and a reactor.

:func:`build` assembles the parts (store, ingest gate, library, HTTP families,
Site) so tests can build the same graph with fakes; :class:`UploaddService`
is the tree of services that starts and stops them in order (see its
docstring).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import attrs
from twisted.application.internet import TimerService
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Site

from noded.channel import GuardedSite
from noded.client import connect
from noded.drain import Drain, exit_cleanly
from noded.lifecycle import CannotStart, InOrder, Listener, Step, fail_start
from noded.private import private_dir
from noded.reactor import IReactor
from noded.rsync import write_password_file
from noded.secret import token_secret
from noded.signing import url_key
from noded.threads import Runner, pool_runner
from uploadd.api.admin import AdminAPI
from uploadd.api.auth import AuthAPI
from uploadd.api.cors import Cors
from uploadd.api.docs import DocsAPI
from uploadd.api.files import FilesAPI
from uploadd.api.forward import Forwarder
from uploadd.api.gate import IngestGate, IngestLimits
from uploadd.api.instances import InstancesAPI
from uploadd.api.live import LiveAPI, LiveHub
from uploadd.api.ops import OpsAPI
from uploadd.api.progress import ProgressAPI
from uploadd.api.push import PushAPI
from uploadd.api.renditions import RenditionsAPI
from uploadd.api.request import request_factory
from uploadd.api.root import Router
from uploadd.api.rufh import DraftUploads
from uploadd.api.s3.site import S3Core, S3Listener, s3_listener
from uploadd.api.shares import SharesAPI
from uploadd.api.slideshow import SlideshowAPI
from uploadd.api.storage import StorageAPI
from uploadd.api.tus import TusAPI
from uploadd.api.web import WebAPI
from uploadd.api.webhooks import WebhooksAPI
from uploadd.auth.access_keys import AccessKeys
from uploadd.auth.throttle import SignInLimits, SignInThrottle
from uploadd.auth.tokens import TokenIssuer
from uploadd.buckets import Buckets, Multipart
from uploadd.cluster.amp_rsync import AmpRsyncNodes, RsyncSettings
from uploadd.cluster.locator import Locator
from uploadd.cluster.pinger import Pinger
from uploadd.cluster.registry import Registry
from uploadd.cluster.repair import Repairer
from uploadd.cluster.replicator import ReplicationSettings, Replicator
from uploadd.config import Config
from uploadd.events import topics
from uploadd.events.bus import IEventBus
from uploadd.events.factory import open_bus
from uploadd.events.relay import OutboxRelay
from uploadd.failures import FailureLog
from uploadd.gauges import watch_bus, watch_cluster, watch_outbox
from uploadd.ingest.budget import MemoryBudget
from uploadd.ingest.progress import ProgressBoard
from uploadd.library import Library
from uploadd.metrics import Metrics
from uploadd.renditions import ProfilePolicy, Renditions
from uploadd.shares import ShareLinks, share_key
from uploadd.store.blobs import BlobStore
from uploadd.store.factory import open_store
from uploadd.store.interface import IMetadataStore, InstanceRecord, NodeRecord
from uploadd.uploads.resumable import Resumable
from uploadd.workers.webhooks import Poster
from uploadd.workers.wiring import minted_tokens, push_role, transcode_role, vapid_of

log = Logger()


@attrs.define
class Parts:
    store: IMetadataStore
    blobs: BlobStore
    tokens: TokenIssuer
    gate: IngestGate
    library: Library
    resumable: Resumable
    router: Router
    site: Site
    metrics: Metrics
    progress: ProgressBoard
    registry: Registry
    pinger: Pinger
    replicator: Replicator
    repairer: Repairer
    locator: Locator
    bus: IEventBus
    relay: OutboxRelay
    drain: Drain
    buckets: Buckets
    multipart: Multipart
    access_keys: AccessKeys
    #: The S3 listener, when ``[s3] enabled``.
    s3: S3Listener | None = None


def build(
    config: Config,
    reactor: IReactor,
    store: IMetadataStore,
    secret: bytes,
    run: Runner,
    cluster_secret: bytes = b"",
    poster: Poster | None = None,
    api_url: Callable[[], str] | None = None,
    read: Runner | None = None,
) -> Parts:
    """Every part of an uploadd process, connected. The in-process transcode
    worker talks to ``api_url`` (this process, once it listens); without
    one, or without the role in ``[workers] roles``, none runs here. Plain
    bodies are read from their sockets through ``read`` (default ``run``)."""
    cluster = config.cluster
    blobs = BlobStore(config.storage.data_dir)
    tokens = TokenIssuer(secret, reactor)
    metrics = Metrics()
    progress = ProgressBoard(reactor, config.ingest.progress_ttl)
    library = Library(
        store,
        blobs,
        run,
        reactor,
        ProfilePolicy(config.workers.profiles),
        metrics=metrics,
    )
    resumable = Resumable(
        store,
        blobs,
        library,
        run,
        reactor,
        config.uploads.expire_after,
        config.storage.fsync,
        instance_name(config),
        config.shared_store,
        metrics=metrics,
        every_md5=config.storage.every_md5,
    )

    # The S3 API's core: buckets of library files, multipart uploads on the
    # resumable core, and access keys sealed under the token secret.
    buckets = Buckets(store, library, blobs, run, reactor)
    multipart = Multipart(
        store,
        resumable,
        buckets,
        reactor,
        min_part=config.s3.min_part,
        max_parts=config.s3.max_parts,
        max_size=config.http.max_upload_size,
    )
    access_keys = AccessKeys.with_secret(store, secret, reactor)

    def connector(record: NodeRecord) -> Deferred[Any]:
        return Deferred.fromCoroutine(
            connect(
                reactor,
                record.host,
                record.port,
                cluster_secret,
                connect_within=cluster.ping_timeout,
            )
        )

    rsync = RsyncSettings(
        password_file=config.storage.data_dir / "rsync.password",
        timeout=cluster.rsync_timeout,
        contimeout=cluster.rsync_contimeout,
        deadline=cluster.rsync_deadline,
    )
    nodes = AmpRsyncNodes(connector, reactor, url_key(cluster_secret), rsync)
    registry = Registry(store, reactor, nodes)
    pinger = Pinger(
        registry,
        reactor,
        cluster.ping_interval,
        cluster.ping_timeout,
        cluster.rise,
        cluster.fall,
        metrics=metrics,
    )
    # One log of background failures, for the admin console.
    failures = FailureLog(reactor)
    replicator = Replicator(
        registry,
        store,
        blobs,
        run,
        reactor,
        ReplicationSettings(
            replicas=cluster.replicas,
            transfers_per_node=cluster.transfers_per_node,
            keep_local=cluster.keep_local,
            ping_timeout=cluster.ping_timeout,
        ),
        failures=failures,
        metrics=metrics,
    )
    library.on_stored.append(replicator.stored)
    if config.awaits_copy:
        library.confirm = replicator.first_copy
    bus = open_bus(config.amqp, reactor)
    # What one instance knows and every instance answers for.
    progress.attach(bus)
    failures.attach(bus)
    relay = OutboxRelay(store, bus, reactor, keep=config.events.replay)
    relay.attach()
    library.on_stored.append(relay.kick)
    replicator.on_change.append(relay.kick)
    library.on_deleted.append(relay.kick)
    # A file deleted through any instance leaves no bytes on this one.
    bus.subscribe("blobs", topics.FILE_DELETED, library.deleted, each_instance=True)
    hub = LiveHub(reactor)
    hub.attach(bus)
    roles = config.workers.roles
    vapid = vapid_of(config)
    if "push" in roles:
        push_role(config, reactor, store, bus, poster, failures, vapid, metrics)
    if "transcode" in roles and api_url is not None:
        transcode_role(
            config, reactor, run, bus, api_url, minted_tokens(tokens, reactor)
        )
    repairer = Repairer(
        registry,
        store,
        replicator,
        reactor,
        cluster.replicas,
        cluster.repair_after,
        cluster.repair_interval,
    )
    pinger.on_change.append(repairer.health_changed)
    repairer.attach(bus)
    watch_cluster(metrics, registry, replicator, repairer)
    watch_bus(metrics, bus)
    watch_outbox(metrics, store, reactor)
    locator = Locator(
        registry,
        store,
        reactor,
        url_key(cluster_secret),
        run,
        cluster.download_ttl,
        cluster.zones,
    )
    router = Router()
    forwarder = Forwarder.over_tcp(
        store, reactor, instance_name(config), url_key(cluster_secret), run
    )
    resumable.parts = forwarder
    limits = IngestLimits(
        max_upload_size=config.http.max_upload_size,
        max_body_size=config.http.max_body_size,
        max_concurrent=config.ingest.max_concurrent_uploads,
        high_water=config.ingest.high_water,
        low_water=config.ingest.low_water,
        fsync=config.storage.fsync,
        checkpoint=config.uploads.checkpoint,
    )
    # One budget for the bytes every body holds, on every listener.
    budget = MemoryBudget(config.ingest.memory_budget)
    gate = IngestGate(
        router,
        tokens,
        run,
        progress,
        metrics,
        reactor,
        limits,
        forwarder=forwarder,
        budget=budget,
        read=read,
    )
    drain = Drain(reactor)
    s3 = None
    if config.s3.enabled:
        # The S3 API on its own listener: its own router and gate, the same
        # limits, metrics, progress and drain as the main site.
        s3 = s3_listener(
            config,
            reactor,
            S3Core(store, blobs, buckets, multipart, access_keys, locator, run),
            tokens,
            progress,
            metrics,
            limits,
            drain,
            budget,
            read,
        )
    gates = [gate] if s3 is None else [gate, s3.gate]
    renditions = Renditions(
        store, reactor, config.workers.max_attempts, failures=failures, metrics=metrics
    )
    renditions.on_change.append(relay.kick)
    links = ShareLinks(store, share_key(secret), reactor)
    throttle = SignInThrottle(
        reactor,
        SignInLimits(
            config.auth.signin_failures_per_user,
            config.auth.signin_failures_per_address,
            config.auth.signin_window,
        ),
    )
    throttle.attach(bus)
    draft = DraftUploads(
        resumable,
        blobs,
        run,
        tokens,
        gate,
        reactor,
        # The draft answers a completed upload as a file's upload is answered.
        lambda base, record: files_api.document(base, record),
        config.http.public_url,
        progress_interval=config.uploads.progress_interval,
        max_append_size=config.uploads.max_append_size,
        min_append_size=config.uploads.min_append_size,
    )
    files_api = FilesAPI(
        library,
        store,
        blobs,
        run,
        tokens,
        gate,
        locator,
        config.storage.fsync,
        config.http.public_url,
        config.http.page_size,
        links=links,
        draft=draft,
        md5=config.storage.every_md5,
    )
    router.mount(
        # Before FilesAPI: its PUT /files/<path> would take output uploads.
        RenditionsAPI(
            renditions,
            library,
            store,
            blobs,
            run,
            tokens,
            gate,
            locator,
            config.storage.fsync,
            config.http.public_url,
            md5=config.storage.every_md5,
        ),
        files_api,
        TusAPI(resumable, blobs, run, tokens, gate, config.http.public_url, draft),
        StorageAPI(
            resumable,
            store,
            blobs,
            tokens,
            gate,
            locator,
            config.http.public_url,
            config.http.page_size,
        ),
        AuthAPI(
            store,
            tokens,
            run,
            config.auth.token_ttl,
            throttle,
        ),
        AdminAPI(registry, replicator, repairer, store, tokens, bus, failures),
        LiveAPI(hub, tokens, store),
        WebhooksAPI(store, tokens, reactor, config.webhooks.allow_private),
        SlideshowAPI(
            store, tokens, hub, relay, reactor, locator, links, config.http.public_url
        ),
        SharesAPI(store, tokens, links, hub, relay, reactor, config.http.public_url),
        ProgressAPI(tokens, progress),
        PushAPI(
            store,
            tokens,
            reactor,
            vapid.public_key,
            config.push.allow_private,
            config.push.max_subscriptions,
        ),
        InstancesAPI(resumable, blobs, run, url_key(cluster_secret), reactor),
        # Bodies in flight on every listener.
        OpsAPI(
            metrics,
            lambda: sum(g.in_flight for g in gates),
            config.metrics.token,
            held=lambda: budget.total,
        ),
        DocsAPI(),
        WebAPI(),
    )
    site = GuardedSite(
        router,
        requestFactory=request_factory(
            gate, reactor, Cors(config.http.cors_origins), drain
        ),
        parsePOSTFormSubmission=False,
        timeout=config.http.idle_timeout,
        header_timeout=config.http.header_timeout,
        http_metrics=metrics.http,
        reactor=reactor,
    )
    return Parts(
        store,
        blobs,
        tokens,
        gate,
        library,
        resumable,
        router,
        site,
        metrics,
        progress,
        registry,
        pinger,
        replicator,
        repairer,
        locator,
        bus,
        relay,
        drain,
        buckets,
        multipart,
        access_keys,
        s3,
    )


def reachable(url: str) -> str:
    """``url`` of a listener as another host reaches it: a wildcard
    address becomes this host's name."""
    for wildcard in ("//0.0.0.0:", "//[::]:"):
        if wildcard in url:
            return url.replace(wildcard, f"//{socket.getfqdn()}:")
    return url


def instance_name(config: Config) -> str:
    """This instance's name among those sharing its database."""
    return config.cluster.instance or socket.gethostname()


def warn_of_unset_cluster_settings(config: Config) -> None:
    """A store other instances may share wants secrets they share too: one
    generated into this data directory is this instance's alone, and tokens
    it signs fail on the others."""
    if not config.shared_store:
        return
    if not config.cluster.instance:
        log.warn(
            "[cluster] instance is not set: this instance is named after its"
            " host ({name}); give it a name that stays the same across"
            " restarts, or the uploads it holds wait for a name that is gone",
            name=instance_name(config),
        )
    for section, key, value in (
        ("auth", "secret", config.auth.secret),
        ("cluster", "secret", config.cluster.secret),
        ("push", "vapid_private_key", config.push.vapid_private_key),
    ):
        if not value:
            log.warn(
                "[{section}] {key} is not set: this instance generates its own,"
                " and instances sharing the database need the same one",
                section=section,
                key=key,
            )


class UploaddService(InOrder):
    """The uploadd daemon, ``twistd uploadd``: a tree whose children start
    in this order, each once the one before is ready, and stop in the
    reverse order:

    - ``store``: migrate (start), close (stop: last of all)
    - ``instance``: no live or retired instance on the database has this
      one's ``[cluster] instance`` name (on PostgreSQL an advisory lock held
      for the process's life)
    - ``threads``: the writer thread pool
    - ``readers``: the threads reading plain bodies from their sockets
    - ``cluster``: the rsync password file, the nodes from store and config
    - ``pinger``, ``repair``: node health and re-replication timers
    - ``bus``: the event bus (RabbitMQ connects; in-process: nothing)
    - ``outbox relay``: events from the store to the bus
    - ``uploads``: clear staging files a crash left, reconcile ``uploads/``
    - ``sweeper``: expires idle resumable uploads (a TimerService)
    - ``http``: the listener on ``[http] endpoint`` (or host and port); its
      stop closes the port, then lets requests in flight finish
      (``[http] shutdown_grace``) before anything above it stops

    - ``s3``: with ``[s3] enabled``, the S3 API's listener on ``[s3]
      endpoint`` (its requests drain with the main listener's)

    Once all are up, the instance registers the URL the others reach it at
    and ``<data_dir>/s3.port`` (with the S3 API) and ``uploadd.port`` are
    written; a start that
    fails logs a critical line and exits 1.
    """

    def __init__(self, config: Config, reactor: IReactor) -> None:
        super().__init__()
        self.name = "uploadd"
        self.config = config
        self._reactor = reactor
        data_dir = private_dir(config.storage.data_dir)
        self._data_path = str(data_dir.resolve())
        pool = ThreadPool(
            minthreads=0, maxthreads=config.ingest.writer_threads, name="uploadd-io"
        )
        self._run = pool_runner(reactor, pool)
        readers = ThreadPool(
            minthreads=0, maxthreads=config.ingest.reader_threads, name="uploadd-read"
        )
        store = open_store(config.database.url, config.storage.data_dir, reactor)
        warn_of_unset_cluster_settings(config)
        self._cluster_secret = token_secret(
            config.cluster.secret, data_dir, name="cluster-secret"
        )
        self._version = 0
        self.parts = build(
            config,
            reactor,
            store,
            token_secret(config.auth.secret, data_dir),
            self._run,
            self._cluster_secret,
            # The in-process transcode worker talks to this listener (over
            # TCP; on a UNIX socket, to [workers] api_url).
            api_url=lambda: self.http.url() or config.workers.api_url,
            read=pool_runner(reactor, readers),
        )
        parts = self.parts
        sweeper = TimerService(config.uploads.sweep_interval, self._sweep)
        sweeper.clock = reactor
        sweeper.name = "sweeper"
        self.http = Listener(
            "http", reactor, config.http.listen_on, parts.site, self._drain
        )
        # Started after the main listener and stopped before it, whose
        # drain lets the S3 requests in flight end too.
        self.s3 = (
            Listener("s3", reactor, config.s3.endpoint, parts.s3.site)
            if parts.s3 is not None
            else None
        )
        for child in (
            Step("store", self._migrate, store.close),
            Step("instance", self._claim_name),
            Step("threads", pool.start, pool.stop),
            Step("readers", readers.start, readers.stop),
            Step("cluster", self._load_nodes),
            Step("pinger", parts.pinger.start, parts.pinger.stop),
            Step("repair", parts.repairer.start, parts.repairer.stop),
            Step("bus", parts.bus.start, parts.bus.stop),
            Step("outbox relay", parts.relay.start, parts.relay.stop),
            Step("uploads", self._reconcile),
            sweeper,
            self.http,
            *([self.s3] if self.s3 is not None else []),
        ):
            child.setServiceParent(self)

    def startService(self) -> None:
        super().startService()
        assert self.started is not None
        self.started.addCallback(lambda _: Deferred.fromCoroutine(self._listening()))
        self.started.addErrback(fail_start, "uploadd", self._reactor)

    async def _migrate(self) -> None:
        self._version = await self.parts.store.migrate()

    async def _claim_name(self) -> None:
        """Make sure no other live instance on this database has this
        instance's name (the bytes of its uploads would be mixed up), and
        that it was not retired."""
        name, store = self.parts.resumable.instance, self.parts.store
        if not await store.leads(f"instance {name}"):
            raise CannotStart(
                f"another uploadd instance named {name!r} runs on this database; "
                "give each instance its own [cluster] instance"
            )
        known = await store.get_instance(name)
        if known is not None and known.retired_at is not None:
            raise CannotStart(
                f"instance {name!r} was retired; start this one under a new "
                "[cluster] instance name"
            )

    async def _register(self) -> None:
        """Tell the other instances where this one is reached."""
        url = self.config.cluster.instance_url or reachable(self.http.url())
        await self.parts.store.register_instance(
            InstanceRecord(self.parts.resumable.instance, url, self._reactor.seconds())
        )

    async def _load_nodes(self) -> None:
        write_password_file(
            self.config.storage.data_dir / "rsync.password", self._cluster_secret
        )
        await self.parts.registry.load(self.config.cluster.nodes)

    async def _reconcile(self) -> None:
        removed = self.parts.blobs.prepare()
        if removed:
            log.info("removed {count} interrupted uploads", count=removed)
        here = await self.parts.replicator.catch_up(
            await self._run(self.parts.blobs.file_ids)
        )
        if here:
            log.info("{count} files here have too few copies: copying", count=here)
        removed, cut = await self.parts.resumable.reconcile()
        if removed or cut:
            log.info(
                "resumable uploads reconciled: {removed} files without an upload "
                "removed, {cut} cut back to their recorded offset",
                removed=removed,
                cut=cut,
            )

    def _sweep(self) -> Deferred[int]:
        sweeping = Deferred.fromCoroutine(self.parts.resumable.sweep())
        sweeping.addErrback(lambda f: log.failure("sweeping expired uploads failed", f))
        return sweeping

    async def _listening(self) -> None:
        await self._register()
        if self.s3 is not None:
            self._write_port_file("s3.port", self.s3)
            log.info(
                "S3 API listening on {at}", at=self.s3.url() or self.s3.description
            )
        self._write_port_file("uploadd.port", self.http)
        log.info(
            "uploadd listening on {at} (schema {version}, data {data})",
            at=self.http.url() or self.http.description,
            version=self._version,
            data=self._data_path,
        )

    def _write_port_file(self, name: str, listener: Listener) -> None:
        """Tell tools where a listener listens: the TCP port (useful with
        port 0), or the UNIX socket's path (``uploadd.port`` last: once it
        is there, every listener is)."""
        final = self.config.storage.data_dir / name
        partial = final.with_suffix(".port.tmp")
        partial.write_text(f"{listener.port_or_path()}\n")
        partial.replace(final)

    async def _drain(self) -> None:
        """The listener has closed: let requests in flight end (up to the
        grace) before the rest of the tree stops."""
        stopped = await self.parts.drain.drain(self.config.http.shutdown_grace)
        log.info("uploadd stopped ({count} requests cut short)", count=stopped)

    def stopService(self) -> Deferred[None]:
        stopping = super().stopService()
        stopping.addCallback(lambda _: exit_cleanly(self._reactor))
        return stopping
