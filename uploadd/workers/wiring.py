"""Putting workers together, for uploadd itself and for worker processes.

uploadd runs the roles in ``[workers] roles`` on its own bus; ``twistd
uploadd worker --role R`` runs one role against RabbitMQ, anywhere. Either
way a role is the same objects subscribed the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from treq.client import HTTPClient
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from noded.reactor import IReactor
from noded.secret import NoSecret
from noded.threads import Runner
from uploadd.auth.tokens import Principal, TokenIssuer
from uploadd.config import Config
from uploadd.events.bus import IEventBus
from uploadd.failures import FailureLog
from uploadd.metrics import Metrics
from uploadd.store.interface import IMetadataStore
from uploadd.workers.client import RenditionsClient
from uploadd.workers.email import EmailPusher, smtp_mailer
from uploadd.workers.profiles import ToolSettings
from uploadd.workers.transcode import TranscodeWorker
from uploadd.workers.vapid import Vapid, load_private_key
from uploadd.workers.webhooks import Poster, WebhookPusher, treq_poster
from uploadd.workers.webpush import WebPusher

log = Logger()

#: Who a minted worker token speaks for: no user, only the worker scope.
WORKER = Principal(0, "worker", frozenset({"worker"}))


def minted_tokens(
    tokens: TokenIssuer, clock: IReactorTime, ttl: float = 3600.0
) -> Callable[[], str]:
    """Worker tokens signed here, renewed when half their life is gone."""
    held: list[tuple[float, str]] = []

    def token() -> str:
        now = clock.seconds()
        if not held or now - held[0][0] > ttl / 2:
            held[:] = [(now, tokens.issue(WORKER, ttl))]
        return held[0][1]

    return token


def vapid_of(config: Config, create: bool = True) -> Vapid:
    """The VAPID key and contact: ``[push] vapid_private_key``, else the key
    in the data directory (generated there when ``create``, else NoSecret)."""
    key = load_private_key(
        config.push.vapid_private_key, config.storage.data_dir, create=create
    )
    return Vapid(key, config.push_subject)


def push_role(
    config: Config,
    reactor: IReactor,
    store: IMetadataStore,
    bus: IEventBus,
    poster: Poster | None = None,
    failures: FailureLog | None = None,
    vapid: Vapid | None = None,
    metrics: Metrics | None = None,
) -> None:
    """Webhooks always; email when ``[smtp] host`` is set; Web Push with
    ``vapid``, or (a worker process) the key uploadd uses, when there is one
    to read. Webhook deliveries are counted on ``metrics`` (a worker
    process serves none: its own)."""
    concurrency = config.workers.push_concurrency
    post = poster or treq_poster(reactor, allow_private=config.webhooks.allow_private)
    pusher = WebhookPusher(store, reactor, post, failures, metrics=metrics or Metrics())
    pusher.attach(bus, concurrency)
    if vapid is None:
        try:
            vapid = vapid_of(config, create=False)
        except NoSecret as missing:
            log.warn(
                "no Web Push in this worker: {why}; set [push] vapid_private_key"
                " to uploadd's",
                why=str(missing),
            )
    if vapid is not None:
        push = config.push
        WebPusher(
            store,
            reactor,
            poster
            or treq_poster(
                reactor,
                allow_private=push.allow_private,
                what="Web Push messages",
                setting="[push] allow_private",
            ),
            vapid,
            tuple(push.events.split()),
            int(push.ttl),
            config.http.public_url,
            failures,
        ).attach(bus, concurrency)
    smtp = config.smtp
    if smtp.host:
        EmailPusher(
            store,
            smtp_mailer(reactor, smtp.host, smtp.port, smtp.username, smtp.password),
            smtp.sender,
            tuple(smtp.events.split()),
        ).attach(bus, concurrency)


def transcode_role(
    config: Config,
    reactor: IReactor,
    run: Runner,
    bus: IEventBus,
    api_url: Callable[[], str],
    token: Callable[[], str],
) -> TranscodeWorker:
    workers = config.workers
    # treq follows the redirect to a node; connections to uploadd are kept.
    http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor)))
    worker = TranscodeWorker(
        RenditionsClient(http, run, api_url, token),
        reactor,
        run,
        config.work_dir,
        ToolSettings(
            workers.time_limit, workers.silence_threshold, workers.silence_minimum
        ),
    )
    worker.attach(bus, workers.transcode_concurrency)
    return worker
