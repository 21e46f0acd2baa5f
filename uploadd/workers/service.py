"""``twistd uploadd worker --role transcode|push``: one role, on RabbitMQ.

A worker process shares nothing with uploadd but the broker and, for its
role, what it must reach: a transcode worker talks to the API
(``[workers] api_url``, with ``[workers] token`` or a token it mints from the
uploadd secret when it runs beside uploadd); a push worker reads webhooks and
email addresses from the database. Several of each may run; they share
their queues, and a message whose worker dies goes to another.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from noded.lifecycle import InOrder, Step
from noded.reactor import IReactor
from noded.secret import token_secret
from noded.threads import pool_runner
from uploadd.auth.tokens import TokenIssuer
from uploadd.config import Config
from uploadd.events.factory import open_bus
from uploadd.store.factory import open_store
from uploadd.workers.wiring import minted_tokens, push_role, transcode_role

log = Logger()


def api_url(config: Config) -> Callable[[], str]:
    """Where uploadd answers: ``[workers] api_url``, else the uploadd of this
    data directory (the port it wrote down), else ``[http]`` host and port."""
    if config.workers.api_url:
        return lambda: config.workers.api_url
    http = config.http
    host = "127.0.0.1" if http.host in ("0.0.0.0", "") else http.host
    written = config.storage.data_dir / "uploadd.port"

    def here() -> str:
        try:
            port = int(written.read_text().strip())
        except (OSError, ValueError):
            port = http.port
        return f"http://{host}:{port}"

    return here


class WorkerService(InOrder):
    """A worker process: a tree whose children start in this order and stop
    in the reverse one: ``store`` (push only: migrate / close), ``threads``,
    ``bus`` (connects to RabbitMQ and consumes)."""

    def __init__(self, config: Config, role: str, reactor: IReactor) -> None:
        super().__init__()
        self.name = f"uploadd {role} worker"
        self.config = config
        self.role = role
        self._reactor = reactor
        pool = ThreadPool(minthreads=0, maxthreads=4, name="uploadd-worker")
        self.bus = open_bus(config.amqp, reactor)
        if role == "push":
            store = open_store(config.database.url, config.storage.data_dir, reactor)
            push_role(config, reactor, store, self.bus)
            Step("store", store.migrate, store.close).setServiceParent(self)
        else:
            transcode_role(
                config,
                reactor,
                pool_runner(reactor, pool),
                self.bus,
                api_url(config),
                self._token(),
            )
        Step("threads", pool.start, pool.stop).setServiceParent(self)
        Step("bus", self._consume, self.bus.stop).setServiceParent(self)

    def _token(self) -> Callable[[], str]:
        token = self.config.workers.token
        if token:
            return lambda: token
        secret = token_secret(
            self.config.auth.secret, self.config.storage.data_dir, create=False
        )
        return minted_tokens(TokenIssuer(secret, self._reactor), self._reactor)

    def startService(self) -> None:
        super().startService()
        assert self.started is not None
        self.started.addErrback(self._failed)

    def _consume(self) -> None:
        self.bus.start()
        log.info(
            "uploadd {role} worker consuming from {bus}",
            role=self.role,
            bus=self.bus.describe(),
        )

    def _failed(self, failure: Failure) -> None:
        log.failure("the worker failed to start", failure)
        self._reactor.stop()
