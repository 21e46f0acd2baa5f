"""The embedded metadata store: SQLite through adbapi's thread pool.

One connection (SQLite allows one writer) in a pool thread, so no query ever
runs on the reactor thread. Migrations are the numbered ``migrations/*.sql``
files; ``PRAGMA user_version`` records how far a database has come. The store
is assembled from one part per area (people, uploads, cluster, events, renditions,
shares).
"""

from __future__ import annotations

from zope.interface import implementer

from uploadd.store.interface import IMetadataStore
from uploadd.store.sqlite.base import migrations
from uploadd.store.sqlite.cluster import Cluster
from uploadd.store.sqlite.events import EventsAndWebhooks
from uploadd.store.sqlite.people import UsersAndFiles
from uploadd.store.sqlite.renditions import Renditions
from uploadd.store.sqlite.shares import Shares
from uploadd.store.sqlite.uploads import Uploads

__all__ = ["SQLiteStore", "migrations"]


@implementer(IMetadataStore)
class SQLiteStore(
    UsersAndFiles, Uploads, Cluster, EventsAndWebhooks, Renditions, Shares
):
    """IMetadataStore on one SQLite file."""
