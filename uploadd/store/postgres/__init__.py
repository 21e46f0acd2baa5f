"""The shared metadata store: PostgreSQL through psycopg 3 and its pool.

The parts are the dialect-neutral ones in ``uploadd.store.sql`` (the same
SQL as SQLite); this package adds the connection (``base``): pooled
connections used only from the store's own threads, serializable writes,
and the shared migrations with their PostgreSQL spellings, recorded in a
``schema_version`` table.
"""

from __future__ import annotations

from zope.interface import implementer

from uploadd.store.interface import IMetadataStore
from uploadd.store.postgres.base import PostgresBase, migrations
from uploadd.store.sql.buckets import Buckets
from uploadd.store.sql.cluster import Cluster
from uploadd.store.sql.events import EventsAndWebhooks
from uploadd.store.sql.people import UsersAndFiles
from uploadd.store.sql.push import PushSubscriptions
from uploadd.store.sql.renditions import Renditions
from uploadd.store.sql.shares import Shares
from uploadd.store.sql.uploads import Uploads

__all__ = ["PostgresStore", "migrations"]


@implementer(IMetadataStore)
class PostgresStore(
    UsersAndFiles,
    Uploads,
    Cluster,
    EventsAndWebhooks,
    Renditions,
    Shares,
    PushSubscriptions,
    Buckets,
    PostgresBase,
):
    """IMetadataStore on one PostgreSQL database."""
