"""The outbox, webhooks and their deliveries."""

from __future__ import annotations

import json
from collections.abc import Sequence

import attrs

from uploadd.store.interface import (
    Delivery,
    Event,
    Webhook,
)
from uploadd.store.sql.base import Cursor, SQLBase
from uploadd.store.sql.rows import (
    _DELIVERY_COLUMNS,
    _delivery,
    _insert_events,
)


class EventsAndWebhooks(SQLBase):
    """The outbox, webhooks and their deliveries."""

    async def add_events(self, events: Sequence[Event]) -> None:
        await self._write(lambda cursor: _insert_events(cursor, events))

    async def pending_events(self, limit: int) -> list[Event]:
        rows = await self._query(
            "SELECT id, topic, owner_id, payload, created_at FROM events"
            " WHERE sent_at IS NULL ORDER BY id LIMIT ?",
            limit,
        )
        return [
            Event(topic, json.loads(payload), owner_id, created_at, event_id)
            for event_id, topic, owner_id, payload, created_at in rows
        ]

    async def mark_sent(self, event_ids: Sequence[int], now: float) -> None:
        def run(cursor: Cursor) -> None:
            cursor.executemany(
                "UPDATE events SET sent_at = ? WHERE id = ?",
                [(now, event_id) for event_id in event_ids],
            )

        await self._write(run)

    async def outbox_depth(self) -> int:
        rows = await self._query("SELECT COUNT(*) FROM events WHERE sent_at IS NULL")
        count: int = rows[0][0]
        return count

    async def events_after(
        self, after: int, owner_id: int | None, limit: int
    ) -> list[Event]:
        mine = "" if owner_id is None else " AND owner_id = ?"
        rows = await self._query(
            "SELECT id, topic, owner_id, payload, created_at FROM events"
            f" WHERE sent_at IS NOT NULL AND id > ?{mine} ORDER BY id LIMIT ?",
            *((after, limit) if owner_id is None else (after, owner_id, limit)),
        )
        return [
            Event(topic, json.loads(payload), owner, created_at, event_id)
            for event_id, topic, owner, payload, created_at in rows
        ]

    async def prune_events(self, sent_before: float) -> int:
        def run(cursor: Cursor) -> int:
            cursor.execute("DELETE FROM events WHERE sent_at < ?", (sent_before,))
            return int(cursor.rowcount)

        pruned: int = await self._write(run)
        return pruned

    async def outbox_oldest(self) -> float | None:
        # The first pending row by id, found through events_pending.
        rows = await self._query(
            "SELECT created_at FROM events WHERE sent_at IS NULL ORDER BY id LIMIT 1"
        )
        oldest: float | None = rows[0][0] if rows else None
        return oldest

    async def add_webhook(self, webhook: Webhook) -> None:
        def run(cursor: Cursor) -> None:
            cursor.execute(
                "INSERT INTO webhooks (id, owner_id, url, events, secret, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    webhook.id,
                    webhook.owner_id,
                    webhook.url,
                    " ".join(webhook.events),
                    webhook.secret,
                    webhook.created_at,
                ),
            )

        await self._write(run)

    async def webhooks_of(self, owner_id: int) -> list[Webhook]:
        rows = await self._query(
            "SELECT id, owner_id, url, events, secret, created_at FROM webhooks"
            " WHERE owner_id = ? ORDER BY created_at, id",
            owner_id,
        )
        return [
            Webhook(r[0], r[1], r[2], tuple(r[3].split()), r[4], r[5]) for r in rows
        ]

    async def delete_webhook(self, webhook_id: str) -> bool:
        def run(cursor: Cursor) -> bool:
            cursor.execute("DELETE FROM deliveries WHERE webhook_id = ?", (webhook_id,))
            cursor.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
            return cursor.rowcount > 0

        deleted: bool = await self._write(run)
        return deleted

    async def save_delivery(self, delivery: Delivery) -> None:
        def run(cursor: Cursor) -> None:
            cursor.execute(
                f"INSERT INTO deliveries ({_DELIVERY_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                + ", ".join(
                    f" {name} = excluded.{name}"
                    for name in _DELIVERY_COLUMNS.split(", ")[1:]
                ),
                # An INTEGER column: PostgreSQL takes no boolean for it.
                (
                    *attrs.astuple(delivery)[:7],
                    int(delivery.delivered),
                    delivery.updated_at,
                ),
            )

        await self._write(run)

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        rows = await self._query(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", delivery_id
        )
        return _delivery(rows[0]) if rows else None

    async def deliveries_of(self, webhook_id: str, limit: int) -> list[Delivery]:
        rows = await self._query(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE webhook_id = ?"
            " ORDER BY updated_at DESC, id LIMIT ?",
            webhook_id,
            limit,
        )
        return [_delivery(row) for row in rows]
