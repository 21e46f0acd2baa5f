"""The SQL metadata store's parts, one per area, written once for every dialect.

Each part builds on :class:`~uploadd.store.sql.base.SQLBase`; a dialect
(``uploadd.store.sqlite``, ``uploadd.store.postgres``) supplies the
connection, transactions, its integrity errors and the few spellings that
differ, and assembles the parts into a store.
"""
