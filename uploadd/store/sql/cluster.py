"""Storage nodes and the replicas they hold."""

from __future__ import annotations

from collections.abc import Sequence

from uploadd.store.interface import (
    Conflict,
    Event,
    NodeRecord,
    Replica,
)
from uploadd.store.sql.base import Cursor, SQLBase
from uploadd.store.sql.rows import _insert_events


class Cluster(SQLBase):
    """Storage nodes and the replicas they hold."""

    async def add_node(self, record: NodeRecord) -> None:
        def run(cursor: Cursor) -> None:
            try:
                cursor.execute(
                    "INSERT INTO nodes (id, host, port, mode, added_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (record.id, record.host, record.port, record.mode, record.added_at),
                )
            except self._integrity_errors:
                raise Conflict(f"node {record.id!r} exists") from None

        await self._write(run)

    async def save_node(self, record: NodeRecord) -> None:
        def run(cursor: Cursor) -> None:
            cursor.execute(
                "UPDATE nodes SET host = ?, port = ?, mode = ? WHERE id = ?",
                (record.host, record.port, record.mode, record.id),
            )

        await self._write(run)

    async def delete_node(self, node_id: str) -> bool:
        def run(cursor: Cursor) -> bool:
            cursor.execute("DELETE FROM replicas WHERE node_id = ?", (node_id,))
            cursor.execute("DELETE FROM nodes WHERE id = ?", (node_id,))
            return cursor.rowcount > 0

        deleted: bool = await self._write(run)
        return deleted

    async def list_nodes(self) -> list[NodeRecord]:
        rows = await self._query(
            "SELECT id, host, port, added_at, mode FROM nodes ORDER BY id"
        )
        return [NodeRecord(*row) for row in rows]

    async def add_replica(self, replica: Replica, events: Sequence[Event] = ()) -> None:
        def run(cursor: Cursor) -> None:
            cursor.execute(
                "INSERT INTO replicas (file_id, node_id, size, verified_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (file_id, node_id) DO UPDATE"
                " SET size = excluded.size, verified_at = excluded.verified_at",
                (replica.file_id, replica.node_id, replica.size, replica.verified_at),
            )
            _insert_events(cursor, events)

        await self._write(run)

    async def remove_replica(self, file_id: str, node_id: str) -> bool:
        def run(cursor: Cursor) -> bool:
            cursor.execute(
                "DELETE FROM replicas WHERE file_id = ? AND node_id = ?",
                (file_id, node_id),
            )
            return cursor.rowcount > 0

        removed: bool = await self._write(run)
        return removed

    async def replicas_of(self, file_id: str) -> list[Replica]:
        rows = await self._query(
            "SELECT file_id, node_id, size, verified_at FROM replicas"
            " WHERE file_id = ? ORDER BY node_id",
            file_id,
        )
        return [Replica(*row) for row in rows]

    async def replica_map(
        self, after_id: str, limit: int
    ) -> list[tuple[str, list[str]]]:
        rows = await self._query(
            f"SELECT f.id, {self._string_agg}(r.node_id, ',') FROM"
            " (SELECT id FROM files WHERE id > ? ORDER BY id LIMIT ?) AS f"
            " LEFT JOIN replicas AS r ON r.file_id = f.id"
            " GROUP BY f.id ORDER BY f.id",
            after_id,
            limit,
        )
        return [(row[0], sorted(row[1].split(",")) if row[1] else []) for row in rows]

    async def replica_counts(self) -> dict[str, int]:
        rows = await self._query(
            "SELECT node_id, COUNT(*) FROM replicas GROUP BY node_id"
        )
        return {node_id: count for node_id, count in rows}
