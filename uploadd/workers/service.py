"""``twistd uploadd worker --role transcode|push``: one role, on RabbitMQ.

A worker process shares nothing with uploadd but the broker and, for its
role, what it must reach: a transcode worker talks to the API
(``[workers] api_url``, with ``[workers] token`` or a token it mints from the
uploadd secret when it runs beside uploadd); a push worker reads webhooks and
email addresses from the database. Several of each may run; they share
their queues, and a message whose worker dies goes to another.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from noded.secret import token_secret
from uploadd.auth.tokens import TokenIssuer
from uploadd.config import Config
from uploadd.events.amqp import amqp_bus
from uploadd.store.sqlite import SQLiteStore
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


class WorkerService(Service):
    def __init__(self, config: Config, role: str, reactor: Any) -> None:
        self.config = config
        self.role = role
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=4, name="uploadd-worker")
        self._run = functools.partial(deferToThreadPool, reactor, self._pool)
        self.bus = amqp_bus(reactor, config.amqp)
        self._store: SQLiteStore | None = None
        if role == "push":
            self._store = SQLiteStore(config.database_path, reactor)
            push_role(config, reactor, self._store, self.bus)
        else:
            transcode_role(
                config, reactor, self._run, self.bus, api_url(config), self._token()
            )

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
        self._pool.start()
        Deferred.fromCoroutine(self._start()).addErrback(self._failed)

    async def _start(self) -> None:
        if self._store is not None:
            await self._store.migrate()
        self.bus.start()
        address = self.bus.address
        log.info(
            "uploadd {role} worker consuming from amqp://{host}:{port}",
            role=self.role,
            host=address.host,
            port=address.port,
        )

    def _failed(self, failure: Failure) -> None:
        log.failure("the worker failed to start", failure)
        self._reactor.stop()

    def stopService(self) -> None:
        super().stopService()
        self.bus.stop()
        self._pool.stop()
        if self._store is not None:
            self._store.close()
