"""The S3 listener's Site: its own router with only the S3 API mounted, its
own ingest gate (sharing the main one's limits, metrics and progress board),
and a request class whose refusals are S3's XML error documents. It drains
with the main site when uploadd stops."""

from __future__ import annotations

import attrs
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.server import Site

from noded.channel import GuardedSite
from noded.drain import Drain
from noded.reactor import IReactor
from noded.threads import Runner
from uploadd.api.gate import IngestGate, IngestLimits
from uploadd.api.request import request_factory
from uploadd.api.root import Router
from uploadd.api.s3.access import Signatures
from uploadd.api.s3.app import S3API
from uploadd.api.s3.bodies import Staging
from uploadd.api.s3.buckets_ops import BucketOps
from uploadd.api.s3.cors import BucketCors, ListenerCors
from uploadd.api.s3.faults import word
from uploadd.api.s3.forms import FormOps
from uploadd.api.s3.multipart_ops import MultipartOps
from uploadd.api.s3.objects_ops import ObjectOps
from uploadd.api.s3.serving import ObjectReader, fetch_from_nodes
from uploadd.auth.access_keys import AccessKeys
from uploadd.auth.tokens import TokenIssuer
from uploadd.buckets import Buckets, Multipart
from uploadd.cluster.locator import Locator
from uploadd.config import Config
from uploadd.ingest.budget import MemoryBudget
from uploadd.ingest.progress import ProgressBoard
from uploadd.metrics import Metrics
from uploadd.store.blobs import BlobStore
from uploadd.store.interface import IMetadataStore


@attrs.frozen
class S3Core:
    """What the S3 API works on, built with every uploadd process."""

    store: IMetadataStore
    blobs: BlobStore
    buckets: Buckets
    multipart: Multipart
    access_keys: AccessKeys
    locator: Locator
    run: Runner


@attrs.frozen
class S3Listener:
    gate: IngestGate
    router: Router
    site: Site
    api: S3API


def s3_listener(
    config: Config,
    reactor: IReactor,
    core: S3Core,
    tokens: TokenIssuer,
    progress: ProgressBoard,
    metrics: Metrics,
    limits: IngestLimits,
    drain: Drain,
    budget: MemoryBudget | None = None,
    read: Runner | None = None,
) -> S3Listener:
    """The S3 API on a Site of its own, for ``[s3] endpoint``."""
    s3 = config.s3
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 4
    agent = Agent(reactor, connectTimeout=5, pool=pool)
    router = Router()
    gate = IngestGate(
        router,
        tokens,
        core.run,
        progress,
        metrics,
        reactor,
        limits,
        budget=budget,
        read=read,
    )
    staging = Staging(core.blobs, core.run, config.storage.fsync)
    signatures = Signatures(core.access_keys, reactor, s3.region, s3.presign_max_expiry)
    public_url = config.http.public_url

    if core.buckets.fetch is None:
        # A copy's source held by the nodes only is brought here first.
        core.buckets.fetch = lambda record, path: fetch_from_nodes(
            core.locator, agent, core.blobs, core.run, record, path
        )
    api = S3API(
        signatures,
        core.store,
        core.buckets,
        staging,
        BucketOps(core.buckets, s3.region),
        ObjectOps(
            core.buckets,
            core.blobs,
            staging,
            ObjectReader(core.locator, agent),
            gate,
        ),
        MultipartOps(core.multipart, staging, gate, public_url),
        FormOps(
            core.buckets,
            core.blobs,
            signatures,
            gate,
            config.storage.fsync,
            public_url,
        ),
        BucketCors(s3.cors_origins),
    )
    router.mount(api)
    site = GuardedSite(
        router,
        requestFactory=request_factory(
            gate, reactor, ListenerCors(s3.cors_origins), drain, word
        ),
        parsePOSTFormSubmission=False,
        timeout=config.http.idle_timeout,
        header_timeout=config.http.header_timeout,
        http_metrics=metrics.http,
        reactor=reactor,
    )
    return S3Listener(gate, router, site, api)
