"""The embedded metadata store: SQLite through adbapi's thread pool.

One connection (SQLite allows one writer) in a pool thread, so no query ever
runs on the reactor thread. Migrations are the numbered ``migrations/*.sql``
files; ``PRAGMA user_version`` records how far a database has come. The store
is assembled from the dialect-neutral parts in ``uploadd.store.sql``, one per
area (people, uploads, cluster, events, renditions, shares, push,
buckets).
"""

from __future__ import annotations

from zope.interface import implementer

from uploadd.store.interface import IMetadataStore
from uploadd.store.sql.buckets import Buckets
from uploadd.store.sql.cluster import Cluster
from uploadd.store.sql.events import EventsAndWebhooks
from uploadd.store.sql.people import UsersAndFiles
from uploadd.store.sql.push import PushSubscriptions
from uploadd.store.sql.renditions import Renditions
from uploadd.store.sql.shares import Shares
from uploadd.store.sql.uploads import Uploads
from uploadd.store.sqlite.base import SQLiteBase, migrations

__all__ = ["SQLiteStore", "migrations"]


@implementer(IMetadataStore)
class SQLiteStore(
    UsersAndFiles,
    Uploads,
    Cluster,
    EventsAndWebhooks,
    Renditions,
    Shares,
    PushSubscriptions,
    Buckets,
    SQLiteBase,
):
    """IMetadataStore on one SQLite file."""
