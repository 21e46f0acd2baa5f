"""One place makes the metadata store from ``[database] url`` and one the
event bus from ``[amqp]``; what they make honours its interface."""

from __future__ import annotations

from pathlib import Path

import pytest
from zope.interface.verify import verifyObject

from tests.support import FakeReactor
from uploadd.config import load_config
from uploadd.events.amqp import AmqpBus
from uploadd.events.bus import IEventBus, InProcessBus
from uploadd.events.factory import open_bus
from uploadd.store.factory import open_store
from uploadd.store.interface import IMetadataStore
from uploadd.store.postgres import PostgresStore
from uploadd.store.sqlite import SQLiteStore


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("", "data/uploadd.sqlite3"),
        ("sqlite:///elsewhere/meta.sqlite3", "elsewhere/meta.sqlite3"),
    ],
)
def test_the_store_is_the_sqlite_file_the_url_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, where: str
) -> None:
    """An empty url is ``<data_dir>/uploadd.sqlite3``; ``sqlite:///PATH`` is
    PATH (relative to the working directory, as SQLAlchemy reads it)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    store = open_store(url, Path("data"), FakeReactor())
    try:
        assert isinstance(store, SQLiteStore)
        assert verifyObject(IMetadataStore, store)
        assert store.path == Path(where)
    finally:
        store.close()


@pytest.mark.parametrize(
    "url", ["postgresql://uploadd@db:5432/uploadd", "postgres://db/uploadd"]
)
def test_a_postgresql_url_opens_the_postgresql_store_without_connecting(
    url: str,
) -> None:
    """Both libpq URL schemes name the PostgreSQL store; nothing connects
    until the first query, so opening needs no server."""
    store = open_store(url, Path("data"), FakeReactor())
    try:
        assert isinstance(store, PostgresStore)
        assert verifyObject(IMetadataStore, store)
        assert store.url == url
    finally:
        store.close()


def test_a_store_url_nobody_serves_is_refused() -> None:
    with pytest.raises(ValueError, match="mysql"):
        open_store("mysql://db/uploadd", Path("data"), FakeReactor())


def test_the_bus_is_rabbitmq_with_an_amqp_url_and_in_process_without() -> None:
    """Both buses honour IEventBus (start, stop, kind, depth), so no caller
    asks which one it has."""
    reactor = FakeReactor()
    local = open_bus(load_config(environ={}).amqp, reactor)
    broker = open_bus(
        load_config(
            environ={}, options={("amqp", "url"): "amqp://u:p@10.0.0.9:5673/v"}
        ).amqp,
        reactor,
    )
    assert isinstance(local, InProcessBus) and isinstance(broker, AmqpBus)
    assert verifyObject(IEventBus, local) and verifyObject(IEventBus, broker)
    assert (local.kind, local.depth()) == ("in-process", {})
    assert (broker.kind, broker.depth()) == ("rabbitmq", None)
    assert broker.describe() == "amqp://10.0.0.9:5673"
    assert broker.address.vhost == "v"
