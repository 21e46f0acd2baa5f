"""The daemons' service trees: children start in order, each once the one
before is ready, and stop in reverse; listeners on endpoint strings; a
start that fails exits 1."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure

from noded.config import load_config as load_node_config
from noded.lifecycle import BadEndpoint, InOrder, Listener, Step, fail_start
from noded.reactor import checked
from noded.service import NodeService
from tests.support import FakeReactor
from uploadd.config import load_config
from uploadd.service import UploaddService
from uploadd.workers.service import WorkerService

SECRET = "s" * 40


def recorded(log: list[str], name: str, *, start: Any = None, stop: Any = None) -> Step:
    """A Step that notes when it starts and stops, then returns ``start`` /
    ``stop`` (a Deferred to wait on, or None)."""

    def starting() -> Any:
        log.append(f"start {name}")
        return start

    def stopping() -> Any:
        log.append(f"stop {name}")
        return stop

    return Step(name, starting, stopping)


def tree(*children: IService) -> InOrder:
    parent = InOrder()
    for child in children:
        child.setServiceParent(parent)
    return parent


def outcome(pending: Deferred[Any] | None) -> Any:
    """What ``pending`` has fired with (a Failure too), or None if not yet."""
    assert pending is not None
    found: list[Any] = []
    pending.addBoth(found.append)
    return found[0] if found else None


def test_children_start_in_order_each_once_the_one_before_is_ready() -> None:
    """The second child starts only once what the first returned has fired;
    ``started`` fires once the last is ready."""
    log: list[str] = []
    migrating: Deferred[None] = Deferred()
    root = tree(
        recorded(log, "store", start=migrating),
        recorded(log, "http"),
    )
    root.startService()
    assert log == ["start store"]
    assert outcome(root.started) is None
    migrating.callback(None)
    assert log == ["start store", "start http"]
    assert root.started is not None and root.started.called


def test_children_stop_in_reverse_order_each_after_the_one_after_it() -> None:
    """Stopping begins with the last child; the one before it stops only
    once the last child's stop has finished."""
    log: list[str] = []
    draining: Deferred[None] = Deferred()
    root = tree(
        recorded(log, "store"),
        recorded(log, "relay"),
        recorded(log, "http", stop=draining),
    )
    root.startService()
    log.clear()
    stopping = root.stopService()
    assert log == ["stop http"]
    draining.callback(None)
    assert log == ["stop http", "stop relay", "stop store"]
    assert outcome(stopping) is None


def test_a_child_that_fails_to_start_ends_the_start_and_later_ones_never_run() -> None:
    """``started`` fails with the first child's error; the children after it
    are not started, and stopping stops only those that were."""
    log: list[str] = []
    root = tree(
        recorded(log, "store"),
        Step("cluster", lambda: Deferred.fromCoroutine(_raise(OSError("no disk")))),
        recorded(log, "http"),
    )
    root.startService()
    failure = outcome(root.started)
    assert isinstance(failure, Failure) and failure.check(OSError)
    assert log == ["start store"]
    root.stopService()
    assert log == ["start store", "stop store"]


async def _raise(error: Exception) -> None:
    raise error


def test_a_child_that_fails_to_stop_is_logged_and_the_rest_stop() -> None:
    """A stop that raises is logged; the children before it still stop."""
    log: list[str] = []
    root = tree(recorded(log, "store"), Step("relay", stop=lambda: 1 / 0))
    root.startService()
    with capturedLogs() as events:
        stopping = root.stopService()
    assert outcome(stopping) is None
    assert log == ["start store", "stop store"]
    assert any("stopping relay failed" in formatEvent(e) for e in events)


def test_a_stop_during_the_start_starts_nothing_more() -> None:
    """A daemon stopped while a child is still starting (SIGTERM during a
    migration) starts none of the children after it."""
    log: list[str] = []
    migrating: Deferred[None] = Deferred()
    root = tree(recorded(log, "store", start=migrating), recorded(log, "http"))
    root.startService()
    root.stopService()
    migrating.callback(None)
    assert log == ["start store", "stop store"]


def test_nothing_listens_before_its_turn_even_when_twistd_binds_early() -> None:
    """twistd's privilegedStartService binds no port: the listener waits
    for the children before it (the store, the uploads) to be ready."""
    reactor = FakeReactor()
    root = tree(Listener("http", reactor, "tcp:8080:interface=127.0.0.1", Factory()))
    root.privilegedStartService()
    assert reactor.tcpServers == []
    root.startService()
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (8080, "127.0.0.1")
    ]


@pytest.mark.parametrize(
    ("description", "servers", "url", "port_or_path"),
    [
        ("tcp:0:interface=127.0.0.1", "tcpServers", "http://0.0.0.0:0", 0),
        ("tcp:8080:interface=\\:\\:1", "tcpServers", "http://[::1]:8080", 8080),
        ("unix:/tmp/uploadd.sock", "unixServers", "", "/tmp/uploadd.sock"),
    ],
)
def test_a_listener_listens_where_its_endpoint_string_says(
    description: str, servers: str, url: str, port_or_path: object
) -> None:
    """TCP (IPv4 and IPv6) and UNIX endpoint strings listen through the
    reactor; the listener tells its URL (none for a socket) and its port or
    path."""
    reactor = FakeReactor()
    http = Listener("http", reactor, description, Factory.forProtocol(Protocol))
    tree(http).startService()
    assert len(getattr(reactor, servers)) == 1
    assert http.url() == url
    assert http.port_or_path() == port_or_path


def test_a_bad_endpoint_string_fails_the_start_with_why() -> None:
    """An endpoint Twisted cannot make fails the start as a taken port does."""
    root = tree(Listener("http", FakeReactor(), "tcp:eighty", Factory()))
    root.startService()
    failure = outcome(root.started)
    assert isinstance(failure, Failure) and failure.check(BadEndpoint)
    assert "tcp:eighty" in str(failure.value)
    assert outcome(root.stopService()) is None


class Taken(FakeReactor):
    def listenTCP(self, port: int, *args: Any, **kwargs: Any) -> Any:
        raise CannotListenError("127.0.0.1", port, OSError("Address in use"))


def test_a_taken_port_fails_the_start_once_and_the_stop_is_quiet() -> None:
    """CannotListenError reaches ``started`` (nothing else logs it), and
    the tree still stops cleanly."""
    with capturedLogs() as events:
        root = tree(Listener("http", Taken(), "tcp:8080", Factory()))
        root.startService()
        failure = outcome(root.started)
        assert outcome(root.stopService()) is None
    assert isinstance(failure, Failure) and failure.check(CannotListenError)
    assert [e for e in events if e.get("log_level") >= LogLevel.warn] == []


def test_a_listener_closes_its_port_before_its_after_close_runs() -> None:
    """Stopping closes the port first (no new connections), then runs the
    drain, and only then does the child before it stop."""
    log: list[str] = []
    reactor = FakeReactor()

    class Closing(Listener):
        async def _stop(self) -> None:
            port = self.port
            await super()._stop()
            log.append(f"closed={port is not None and self.port is None}")

    http = Closing(
        "http",
        reactor,
        "tcp:0",
        Factory(),
        after_close=lambda: log.append("drain"),
    )
    root = tree(recorded(log, "store"), http)
    root.startService()
    log.clear()
    root.stopService()
    assert log == ["drain", "closed=True", "stop store"]


def test_a_start_that_fails_logs_it_stops_and_exits_1() -> None:
    """A daemon that cannot listen says so in one critical line, stops the
    reactor, and exits 1 once the reactor has shut down."""
    reactor = FakeReactor()
    reactor.run()
    error = CannotListenError("127.0.0.1", 8080, OSError("Address in use"))
    with capturedLogs() as events:
        fail_start(Failure(error), "uploadd", reactor)
    critical = [formatEvent(e) for e in events if e["log_level"] == LogLevel.critical]
    assert critical == [f"uploadd cannot start: {error}"]
    assert reactor.hasStopped
    assert reactor.triggers["after"]["shutdown"] == [(os._exit, (1,), {})]


def test_a_start_that_fails_before_the_reactor_runs_stops_it_once_it_does() -> None:
    """twistd starts services before it runs the reactor, and noded's
    listeners fail at once: the reactor is stopped as soon as it runs (so
    the daemon exits 1), not asked to stop while it is not running."""
    reactor = FakeReactor()
    error = CannotListenError("127.0.0.1", 7001, OSError("Address in use"))
    fail_start(Failure(error), "noded", reactor)
    assert not reactor.hasStopped
    reactor.run()
    assert reactor.hasStopped
    assert reactor.triggers["after"]["shutdown"] == [(os._exit, (1,), {})]


def test_the_global_reactor_is_a_full_reactor_and_a_clock_is_not() -> None:
    """tap.py's check passes the real reactor and names what a Clock lacks."""
    from twisted.internet import reactor

    assert checked(reactor) is cast(object, reactor)
    with pytest.raises(TypeError, match="IReactorTCP"):
        checked(Clock())


def names(service: MultiService) -> list[str | None]:
    return [child.name for child in service]


def test_uploadd_is_a_tree_in_its_start_order(tmp_path: Path) -> None:
    """Store first (it closes last), the HTTP listener last (it closes
    first, then drains), the timers and the bus between."""
    config = load_config(
        environ={},
        options={
            ("storage", "data_dir"): str(tmp_path / "uploadd"),
            ("http", "endpoint"): f"unix:{tmp_path / 'u.sock'}",
        },
    )
    service = UploaddService(config, FakeReactor())
    assert names(service) == [
        "store",
        "instance",
        "threads",
        "readers",
        "cluster",
        "pinger",
        "repair",
        "bus",
        "outbox relay",
        "uploads",
        "sweeper",
        "http",
    ]
    assert service.http.description == f"unix:{tmp_path / 'u.sock'}"
    service.parts.store.close()


def test_uploadd_listens_on_host_and_port_without_an_endpoint() -> None:
    """``[http] host`` and ``port`` are shorthand for a TCP endpoint."""
    config = load_config(environ={}, options={("http", "host"): "::1"})
    assert config.http.listen_on == "tcp:8080:interface=\\:\\:1:backlog=1024"
    assert (
        load_config(environ={}).http.listen_on
        == "tcp:8080:interface=127.0.0.1:backlog=1024"
    )


def test_noded_is_a_tree_in_its_start_order(tmp_path: Path) -> None:
    """The rsync daemon starts before the listeners and is waited for after
    they close; AMP answers only once downloads are served, and closes first."""
    config = load_node_config(
        environ={},
        options={
            ("node", "data_dir"): str(tmp_path / "node"),
            ("cluster", "secret"): SECRET,
            ("http", "endpoint"): f"unix:{tmp_path / 'n.sock'}",
        },
    )
    service = NodeService(config, FakeReactor())
    assert names(service) == [
        "threads",
        "rsyncd exited",
        "rsyncd",
        "downloads",
        "download url",
        "amp",
    ]
    assert service.amp.description == "tcp:7001:interface=127.0.0.1:backlog=1024"


def test_a_push_worker_is_a_tree_in_its_start_order(tmp_path: Path) -> None:
    """A push worker migrates its store before it consumes from the bus."""
    config = load_config(
        environ={},
        options={
            ("storage", "data_dir"): str(tmp_path / "uploadd"),
            ("amqp", "url"): "amqp://guest:guest@127.0.0.1:5672/",
        },
    )
    service = WorkerService(config, "push", FakeReactor())
    assert names(service) == ["store", "threads", "bus"]
    assert service.bus.kind == "rabbitmq"
